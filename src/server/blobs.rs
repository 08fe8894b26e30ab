//! The blob store behind `generateServerlessPexUrl`: Python-executable files (`deps-*.pex`,
//! `source-*.pex`, `requirements-*.txt`) kept under `data_dir/blobs/`.
//!
//! Content-addressed: each upload is streamed to `tmp/`, hashed (SHA-256) on the way, synced,
//! and renamed to `objects/<sha256>`; then the name is pointed at it by writing
//! `names/<name>` (the hex digest) the same way, temp file + rename. A reader therefore sees
//! either the old blob or the whole new one, never a partial file; an interrupted upload leaves
//! only a temp file (removed), and uploading the same bytes again is a no-op.
//!
//! Names are organisation-wide (not per deployment): a dependency archive built once serves
//! every deployment, as Dagster+'s shared storage does.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Longest accepted name (a file name on every common file system).
const MAX_NAME: usize = 200;

/// What the store knows of one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    pub size: u64,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error(
        "invalid file name {0:?}: use 1 to 200 characters from a-z, A-Z, 0-9, '.', '_', '-', \
         '=' and '+', not starting with '.'"
    )]
    InvalidName(String),
    #[error(
        "the uploaded content's SHA-256 is {actual} but the request said {expected}; the upload \
         was corrupted on the way: upload it again"
    )]
    DigestMismatch { expected: String, actual: String },
    #[error("the upload is larger than this server's limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("blob storage error at {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks that `name` is a plain file name: no path, no hidden file, no odd characters.
pub fn check_name(name: &str) -> Result<(), BlobError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-=+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(BlobError::InvalidName(name.to_string()))
    }
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// The store in `data_dir/blobs`, its folders created.
    pub fn open(data_dir: &Path) -> Result<BlobStore, BlobError> {
        let root = data_dir.join("blobs");
        for sub in ["objects", "names", "tmp"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(BlobStore { root })
    }

    fn name_path(&self, name: &str) -> PathBuf {
        self.root.join("names").join(name)
    }

    fn object_path(&self, sha256: &str) -> PathBuf {
        self.root.join("objects").join(sha256)
    }

    /// The blob stored under `name`, if any.
    pub fn lookup(&self, name: &str) -> Result<Option<BlobInfo>, BlobError> {
        check_name(name)?;
        let index = self.name_path(name);
        let sha256 = match std::fs::read_to_string(&index) {
            Ok(s) => s.trim().to_string(),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&index)(e)),
        };
        let path = self.object_path(&sha256);
        match std::fs::metadata(&path) {
            Ok(meta) => Ok(Some(BlobInfo {
                sha256,
                size: meta.len(),
                path,
            })),
            // An index pointing nowhere (the object was removed by hand) means no blob.
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Starts an upload of at most `limit` bytes.
    pub fn begin(&self, limit: u64) -> Result<Upload, BlobError> {
        let tmp = self.root.join("tmp").join(random_hex()?);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        Ok(Upload {
            store: self.clone(),
            file: Some(file),
            tmp,
            hasher: Sha256::new(),
            size: 0,
            limit,
        })
    }

    /// Writes `name -> sha256` atomically (temp file + rename).
    fn point(&self, name: &str, sha256: &str) -> Result<(), BlobError> {
        let target = self.name_path(name);
        // A random temp name: two uploads of one name at once each rename their own file.
        let tmp = self
            .root
            .join("tmp")
            .join(format!("name-{}", random_hex()?));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(sha256.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &target)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(&target)(e)
        })
    }
}

/// One upload in progress. Dropped without `finish`, it removes its temp file: nothing of it
/// is ever visible.
pub struct Upload {
    store: BlobStore,
    file: Option<File>,
    tmp: PathBuf,
    hasher: Sha256,
    size: u64,
    limit: u64,
}

impl Upload {
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(BlobError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        match self.file.as_mut() {
            Some(f) => f.write_all(chunk).map_err(io(&self.tmp)),
            None => Ok(()),
        }
    }

    /// Checks the digest (when the client sent one), stores the content under its SHA-256 and
    /// points `name` at it.
    pub fn finish(mut self, name: &str, expected: Option<&str>) -> Result<BlobInfo, BlobError> {
        check_name(name)?;
        let sha256 = hex(&std::mem::take(&mut self.hasher).finalize());
        if let Some(expected) = expected
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            return Err(BlobError::DigestMismatch {
                expected: expected.to_string(),
                actual: sha256,
            });
        }
        if let Some(file) = self.file.take() {
            file.sync_all().map_err(io(&self.tmp))?;
        }
        let object = self.store.object_path(&sha256);
        if object.exists() {
            // Same bytes already stored (a re-upload): keep the existing object.
            let _ = std::fs::remove_file(&self.tmp);
        } else {
            std::fs::rename(&self.tmp, &object).map_err(io(&object))?;
        }
        self.store.point(name, &sha256)?;
        Ok(BlobInfo {
            sha256,
            size: self.size,
            path: object,
        })
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        self.file.take();
        // After a successful finish the temp file is gone already; this is for the failures.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

fn random_hex() -> Result<String, BlobError> {
    let mut random = [0u8; 12];
    getrandom::fill(&mut random).map_err(|e| BlobError::Io {
        path: PathBuf::from("<random>"),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(hex(&random))
}

pub(crate) use crate::protocol::hex;

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> String {
        hex(&Sha256::digest(data))
    }

    #[test]
    fn names_are_plain_file_names() {
        for ok in [
            "deps-0123.pex",
            "source-ab_c.pex",
            "requirements-1-dGFn.txt",
            "a=b+c",
        ] {
            check_name(ok).unwrap();
        }
        for bad in ["", ".hidden", "a/b", "../x", "a b", "x\n", &"a".repeat(201)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn upload_then_lookup_and_idempotent_reupload() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        assert_eq!(store.lookup("deps-1.pex").unwrap(), None);
        let mut up = store.begin(100).unwrap();
        up.write(b"hello ").unwrap();
        up.write(b"world").unwrap();
        let info = up.finish("deps-1.pex", Some(&sha(b"hello world"))).unwrap();
        assert_eq!(info.size, 11);
        assert_eq!(store.lookup("deps-1.pex").unwrap(), Some(info.clone()));
        assert_eq!(std::fs::read(&info.path).unwrap(), b"hello world");
        // The same bytes again, and under a second name: one object.
        let mut up = store.begin(100).unwrap();
        up.write(b"hello world").unwrap();
        up.finish("deps-1.pex", None).unwrap();
        let mut up = store.begin(100).unwrap();
        up.write(b"hello world").unwrap();
        up.finish("copy.pex", None).unwrap();
        let objects = std::fs::read_dir(dir.path().join("blobs/objects")).unwrap();
        assert_eq!(objects.count(), 1);
        let tmp = std::fs::read_dir(dir.path().join("blobs/tmp")).unwrap();
        assert_eq!(tmp.count(), 0, "no temp file left behind");
    }

    #[test]
    fn a_wrong_digest_or_an_abandoned_upload_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut up = store.begin(100).unwrap();
        up.write(b"abc").unwrap();
        let err = up.finish("x.pex", Some(&sha(b"abd"))).unwrap_err();
        assert!(matches!(err, BlobError::DigestMismatch { .. }), "{err}");
        let mut up = store.begin(100).unwrap();
        up.write(b"partial").unwrap();
        drop(up);
        let mut up = store.begin(4).unwrap();
        assert!(matches!(
            up.write(b"too long").unwrap_err(),
            BlobError::TooLarge { limit: 4 }
        ));
        drop(up);
        assert_eq!(store.lookup("x.pex").unwrap(), None);
        for sub in ["objects", "names", "tmp"] {
            let n = std::fs::read_dir(dir.path().join("blobs").join(sub))
                .unwrap()
                .count();
            assert_eq!(n, 0, "{sub} is empty");
        }
    }

    #[test]
    fn a_new_upload_replaces_the_name_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        for content in [&b"one"[..], b"two"] {
            let mut up = store.begin(100).unwrap();
            up.write(content).unwrap();
            up.finish("requirements-1.txt", None).unwrap();
        }
        let info = store.lookup("requirements-1.txt").unwrap().unwrap();
        assert_eq!(std::fs::read(info.path).unwrap(), b"two");
    }
}
