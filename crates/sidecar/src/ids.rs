//! Strings from the DHT or the network that this node turns into file
//! names. A content id is blake3 output in hex: anything else (`../x`, an
//! absolute path, a separator, upper case, another length) is refused with
//! a typed error before it can name a file.

use thiserror::Error;

/// A content id that is not the canonical form: 64 lower-case hex digits.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("not a content id (64 lower-case hex digits): {0:?}")]
pub struct InvalidContentId(pub String);

/// Whether `s` is 64 lower-case hex digits.
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a content id's form; the id is returned for chaining.
pub fn check_content_id(id: &str) -> Result<&str, InvalidContentId> {
    if is_hex64(id) {
        Ok(id)
    } else {
        // What is shown of a hostile id is bounded.
        Err(InvalidContentId(id.chars().take(80).collect()))
    }
}

/// `dir/<content id>`, only for a canonical content id: the result is
/// always a direct child of `dir`.
pub fn content_path(
    dir: &std::path::Path,
    content_id: &str,
) -> Result<std::path::PathBuf, InvalidContentId> {
    Ok(dir.join(check_content_id(content_id)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn only_canonical_ids_name_files() {
        let dir = Path::new("/data/recovered");
        let good = "0123456789abcdef".repeat(4);
        assert_eq!(content_path(dir, &good).unwrap(), dir.join(&good));
        for bad in [
            "../x",
            "../../etc/cron.d/evil",
            "/etc/passwd",
            "a/b",
            "",
            ".",
            "..",
            &"0123456789ABCDEF".repeat(4),
            &"0".repeat(63),
            &"0".repeat(65),
            &format!("{}/", "0".repeat(63)),
            &format!("..{}", "0".repeat(62)),
        ] {
            assert!(
                matches!(content_path(dir, bad), Err(InvalidContentId(_))),
                "{bad:?} must be refused"
            );
        }
    }
}
