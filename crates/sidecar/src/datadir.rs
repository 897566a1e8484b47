//! The data directory's one way to write a file: every state file the
//! sidecar keeps (the API token, the recovery secret, the keystore
//! passphrase, the owner's catalog, the working-key record, recovery
//! sessions, the uptime, rewards and verdict ledgers) is created readable by
//! the owner only from its first byte, never chmod-ed after the fact, and
//! replaced atomically and durably. (Shards have their own writer in
//! `custody::store`: streamed, hash-checked, then renamed the same way.)
//!
//! [`write_private`] writes a fresh temp file of a random name, opened
//! exclusively (`O_EXCL`, so a planted or leftover file is never reused)
//! with mode 0600, fsyncs it, renames it over the target and fsyncs the
//! directory: a crash leaves the old file or the new, and nobody who held
//! an open handle on some earlier file at that place reads the new secret.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Mode of every secret file.
pub const FILE_MODE: u32 = 0o600;
/// Mode of the data directory.
pub const DIR_MODE: u32 = 0o700;

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Opens a new file exclusively, owner-only from creation.
fn create_exclusive(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(FILE_MODE);
    }
    opts.open(path)
}

/// Fsyncs a directory, so a rename in it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Replaces `path` with `bytes`, atomically, in a file readable by the
/// owner only from the moment it exists.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "secret".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", crate::encoding::random_hex(8)?));
    let written = (|| {
        let mut f = create_exclusive(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    sync_dir(&dir)
}

/// Makes sure `path` exists as an owner-only file before another library
/// (redb) opens it: created 0600 if absent, narrowed to 0600 if an older
/// version left it wider.
pub fn precreate_private(path: &Path) -> std::io::Result<()> {
    match create_exclusive(path) {
        Ok(f) => {
            f.sync_all()?;
            sync_dir(&parent_of(path))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => restrict(path, FILE_MODE),
        Err(e) => Err(e),
    }
}

/// Narrows an existing secret file to its owner (one an older version
/// wrote).
pub fn make_private(path: &Path) -> std::io::Result<()> {
    restrict(path, FILE_MODE)
}

/// Creates (if needed) a directory readable by the owner only, and narrows
/// an existing one to that.
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(DIR_MODE);
    }
    b.create(path)?;
    restrict(path, DIR_MODE)
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if current & !mode != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & mode))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// Compares a presented secret with the expected one in time that does not
/// depend on where they first differ.
pub fn secrets_equal(given: &[u8], expected: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    // Lengths are not secret (every token has the same length).
    given.len() == expected.len() && bool::from(given.ct_eq(expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn written_owner_only_and_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        write_private(&p, b"one").unwrap();
        assert_eq!(mode(&p), 0o600);
        // Replacing a file an older version left world-readable.
        std::fs::write(&p, b"old").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(mode(&p), 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temp file left behind");
    }

    #[cfg(unix)]
    #[test]
    fn precreated_and_dirs_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("catalog.redb");
        precreate_private(&p).unwrap();
        assert_eq!(mode(&p), 0o600);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        precreate_private(&p).unwrap();
        assert_eq!(mode(&p), 0o600, "an older, wider file is narrowed");
        let d = dir.path().join("data/nested");
        private_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(secrets_equal(b"abcdef", b"abcdef"));
        assert!(!secrets_equal(b"abcdeg", b"abcdef"));
        assert!(!secrets_equal(b"abc", b"abcdef"));
        assert!(!secrets_equal(b"", b"abcdef"));
    }
}
