//! The daemon's durable record (ring-protocol.md §3.8): `{incarnation, ring_seq_high}` kept as
//! JSON in `data_dir/durable.json`, written atomically (temporary file, fsync, rename, fsync of
//! the directory) and loaded at start so that every start is a new incarnation and ring ids are
//! never reused.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use sgc_model::ring::Durable;

/// File name of the record inside the data directory.
pub const FILE: &str = "durable.json";

/// Errors of the durable store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("data dir {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The record exists but is not valid: refusing to start rather than reuse an incarnation.
    #[error("durable record {path} is corrupt: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

/// The durable record of one daemon.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Open (creating) the data directory.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Self { dir: dir.to_owned() })
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// The stored record, `None` on first start.
    pub fn load(&self) -> Result<Option<Durable>, StoreError> {
        let path = self.path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    path,
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Make `d` durable: it is on disk when this returns.
    pub fn save(&self, d: &Durable) -> Result<(), StoreError> {
        let path = self.path();
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        let io = |p: &Path| {
            let p = p.to_owned();
            move |source| StoreError::Io { path: p, source }
        };
        let bytes = serde_json::to_vec(d).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_and_corruption_is_refused() {
        let dir = std::env::temp_dir().join(format!("sgc-store-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let s = Store::open(&dir).expect("open");
        assert_eq!(s.load().expect("load"), None);
        let d = Durable {
            incarnation: 3,
            ring_seq_high: 17,
        };
        s.save(&d).expect("save");
        assert_eq!(s.load().expect("load"), Some(d));
        fs::write(dir.join(FILE), b"{nope").expect("write");
        assert!(matches!(s.load(), Err(StoreError::Corrupt { .. })));
        let _ = fs::remove_dir_all(&dir);
    }
}
