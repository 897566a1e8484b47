//! The owner's catalog: what this node published, with the keys needed to
//! read it back. Kept in its own owner-only file because it holds secrets.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::Path;

const PUBLISHED: TableDefinition<&str, &[u8]> = TableDefinition::new("published");

/// One published content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedContent {
    /// The content id.
    pub content_id: String,
    /// The file name it was published from.
    pub name: String,
    /// Length in bytes.
    pub size: u64,
    /// blake3 of the plaintext, hex.
    pub content_hash: String,
    /// full_replica, erasure_coded or threshold_split.
    pub strategy: String,
    /// Shards needed.
    pub k: u32,
    /// Shards made.
    pub n: u32,
    /// intimate, private, public, ...
    pub reach: String,
    /// The encryption key, hex, when the content is encrypted with an
    /// owner-held key (full_replica and erasure_coded with encryption on).
    pub key_hex: Option<String>,
    /// Unix seconds of publication.
    pub published_at: i64,
}

/// The catalog database.
pub struct Catalog {
    db: Database,
}

fn err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Catalog {
    /// Opens (creating, readable by the owner only) the catalog file. The
    /// file exists owner-only before the database writes a byte to it.
    pub fn open(path: &Path) -> std::io::Result<Catalog> {
        crate::datadir::precreate_private(path)?;
        let db = Database::create(path).map_err(err)?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(PUBLISHED).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Catalog { db })
    }

    /// Records (or replaces) a published content.
    pub fn put(&self, c: &PublishedContent) -> std::io::Result<()> {
        let v = serde_json::to_vec(c)?;
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(PUBLISHED)
            .map_err(err)?
            .insert(c.content_id.as_str(), v.as_slice())
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// One published content.
    pub fn get(&self, content_id: &str) -> std::io::Result<Option<PublishedContent>> {
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(PUBLISHED).map_err(err)?;
        match t.get(content_id).map_err(err)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value())?)),
            None => Ok(None),
        }
    }

    /// Everything published.
    pub fn list(&self) -> std::io::Result<Vec<PublishedContent>> {
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(PUBLISHED).map_err(err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(err)? {
            let (_, v) = row.map_err(err)?;
            out.push(serde_json::from_slice(v.value())?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.redb");
        let c = Catalog::open(&path).unwrap();
        let item = PublishedContent {
            content_id: "abc".into(),
            name: "photo.jpg".into(),
            size: 10,
            content_hash: "00".repeat(32),
            strategy: "full_replica".into(),
            k: 1,
            n: 3,
            reach: "private".into(),
            key_hex: Some("11".repeat(32)),
            published_at: 1,
        };
        c.put(&item).unwrap();
        assert_eq!(c.get("abc").unwrap(), Some(item.clone()));
        assert_eq!(c.list().unwrap(), vec![item]);
        assert!(c.get("nope").unwrap().is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
