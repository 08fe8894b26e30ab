//! The blob store behind `generateServerlessPexUrl`: Python-executable files (`deps-*.pex`,
//! `source-*.pex`, `requirements-*.txt`) kept under `data_dir/blobs/`.
//!
//! Content-addressed: each upload is streamed to `tmp/`, hashed (SHA-256) on the way, synced,
//! and renamed to `objects/<sha256>`; then the name is bound to that digest by a file
//! `deployments/<deployment>/<name>` holding it. A reader therefore sees a whole blob or none;
//! an interrupted upload leaves only a temp file (removed then, or at the next start).
//!
//! Names are per deployment (a staging token cannot touch what `prod` runs) and write-once: the
//! first upload binds a name to its content, the same bytes again are a no-op (a retry), other
//! bytes are refused (`NameTaken`). The hash in a name is the client's own (PEX's `pex_hash`,
//! or a requirements key), so the server binds the name to the SHA-256 it received instead:
//! either way a name can never change content once a document names it.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::private_fs;

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
    #[error(
        "{name} already exists in deployment {deployment} with other content; a file name is \
         bound to its first content: upload the new content under a new name (its own hash)"
    )]
    NameTaken { deployment: String, name: String },
    #[error("the upload is larger than this server's limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// Never sent to clients as is: it names server paths.
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
    /// The store in `data_dir/blobs`, its folders created and leftovers of uploads that were
    /// cut off (`kill -9`) removed. Only the server that holds the data directory's lock
    /// may open it.
    pub fn open(data_dir: &Path) -> Result<BlobStore, BlobError> {
        let root = data_dir.join("blobs");
        for sub in ["objects", "deployments", "tmp"] {
            let dir = root.join(sub);
            private_fs::dir(&dir).map_err(io(&dir))?;
        }
        let tmp = root.join("tmp");
        for entry in std::fs::read_dir(&tmp).map_err(io(&tmp))? {
            let path = entry.map_err(io(&tmp))?.path();
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
        Ok(BlobStore { root })
    }

    fn name_path(&self, deployment: &str, name: &str) -> PathBuf {
        self.root.join("deployments").join(deployment).join(name)
    }

    fn object_path(&self, sha256: &str) -> PathBuf {
        self.root.join("objects").join(sha256)
    }

    /// The blob stored under `name` in `deployment`, if any.
    pub fn lookup(&self, deployment: &str, name: &str) -> Result<Option<BlobInfo>, BlobError> {
        check_name(name)?;
        check_name(deployment)?;
        let index = self.name_path(deployment, name);
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
        let file = private_fs::file_options()
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

    /// Whether the store still has the organisation-wide `names/` folder of old versions.
    pub fn has_legacy_names(&self) -> bool {
        self.root.join("names").is_dir()
    }

    /// Stores made before names were per deployment kept one `names/` folder for the whole
    /// organisation. Each deployment adopts the old names in `uses` (the files its current
    /// documents name), then the old folder goes: no deployment sees another's files.
    pub fn adopt_legacy_names(&self, uses: &[(String, Vec<String>)]) -> Result<(), BlobError> {
        let legacy = self.root.join("names");
        if !self.has_legacy_names() {
            return Ok(());
        }
        for (deployment, names) in uses {
            for name in names {
                if check_name(name).is_err() {
                    continue;
                }
                let old = legacy.join(name);
                match std::fs::read_to_string(&old) {
                    Ok(sha256) => self.bind(deployment, name, sha256.trim())?,
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&old)(e)),
                }
            }
        }
        std::fs::remove_dir_all(&legacy).map_err(io(&legacy))?;
        tracing::info!("moved the file names in use to their deployments' stores");
        Ok(())
    }

    /// Binds `name` to `sha256` in `deployment` unless it is bound already: a hard link of a
    /// complete temp file, which fails if the name exists (atomic create-if-absent).
    fn bind(&self, deployment: &str, name: &str, sha256: &str) -> Result<(), BlobError> {
        let dir = self.root.join("deployments").join(deployment);
        private_fs::dir(&dir).map_err(io(&dir))?;
        let target = dir.join(name);
        let tmp = self
            .root
            .join("tmp")
            .join(format!("name-{}", random_hex()?));
        let linked = (|| -> std::io::Result<()> {
            let mut f = private_fs::file_options()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(sha256.as_bytes())?;
            f.sync_all()?;
            std::fs::hard_link(&tmp, &target)
        })();
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let bound = std::fs::read_to_string(&target).map_err(io(&target))?;
                if bound.trim() == sha256 {
                    Ok(())
                } else {
                    Err(BlobError::NameTaken {
                        deployment: deployment.to_string(),
                        name: name.to_string(),
                    })
                }
            }
            Err(e) => Err(io(&target)(e)),
        }
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
    /// binds `name` in `deployment` to it (refused if the name holds other content).
    pub fn finish(
        mut self,
        deployment: &str,
        name: &str,
        expected: Option<&str>,
    ) -> Result<BlobInfo, BlobError> {
        check_name(name)?;
        check_name(deployment)?;
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
        self.store.bind(deployment, name, &sha256)?;
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

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

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

    fn put(
        store: &BlobStore,
        deployment: &str,
        name: &str,
        data: &[u8],
    ) -> Result<BlobInfo, BlobError> {
        let mut up = store.begin(100)?;
        up.write(data)?;
        up.finish(deployment, name, None)
    }

    #[test]
    fn upload_then_lookup_and_idempotent_reupload() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        assert_eq!(store.lookup("prod", "deps-1.pex").unwrap(), None);
        let mut up = store.begin(100).unwrap();
        up.write(b"hello ").unwrap();
        up.write(b"world").unwrap();
        let info = up
            .finish("prod", "deps-1.pex", Some(&sha(b"hello world")))
            .unwrap();
        assert_eq!(info.size, 11);
        assert_eq!(
            store.lookup("prod", "deps-1.pex").unwrap(),
            Some(info.clone())
        );
        assert_eq!(std::fs::read(&info.path).unwrap(), b"hello world");
        // The same bytes again, under a second name and in a second deployment: one object.
        put(&store, "prod", "deps-1.pex", b"hello world").unwrap();
        put(&store, "prod", "copy.pex", b"hello world").unwrap();
        put(&store, "staging", "deps-1.pex", b"hello world").unwrap();
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
        let err = up.finish("prod", "x.pex", Some(&sha(b"abd"))).unwrap_err();
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
        assert_eq!(store.lookup("prod", "x.pex").unwrap(), None);
        for sub in ["objects", "deployments", "tmp"] {
            let n = std::fs::read_dir(dir.path().join("blobs").join(sub))
                .unwrap()
                .count();
            assert_eq!(n, 0, "{sub} is empty");
        }
    }

    #[test]
    fn a_name_keeps_its_first_content_and_deployments_do_not_share_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        put(&store, "prod", "source-1.pex", b"one").unwrap();
        let err = put(&store, "prod", "source-1.pex", b"two").unwrap_err();
        assert!(matches!(err, BlobError::NameTaken { .. }), "{err}");
        put(&store, "staging", "source-1.pex", b"two").unwrap();
        let prod = store.lookup("prod", "source-1.pex").unwrap().unwrap();
        assert_eq!(std::fs::read(prod.path).unwrap(), b"one");
        let staging = store.lookup("staging", "source-1.pex").unwrap().unwrap();
        assert_eq!(std::fs::read(staging.path).unwrap(), b"two");
    }

    #[test]
    fn legacy_names_go_to_the_deployments_that_use_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let info = put(&store, "prod", "source-1.pex", b"code").unwrap();
        let legacy = dir.path().join("blobs/names");
        std::fs::create_dir_all(&legacy).unwrap();
        std::fs::write(legacy.join("source-1.pex"), &info.sha256).unwrap();
        std::fs::write(legacy.join("deps-2.pex"), &info.sha256).unwrap();
        let uses = [(
            "staging".to_string(),
            vec!["source-1.pex".to_string(), "missing.pex".to_string()],
        )];
        store.adopt_legacy_names(&uses).unwrap();
        assert_eq!(store.lookup("staging", "source-1.pex").unwrap(), Some(info));
        assert_eq!(store.lookup("staging", "deps-2.pex").unwrap(), None);
        assert!(!legacy.exists());
    }

    #[test]
    fn leftover_temp_files_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let up = store.begin(100).unwrap();
        std::mem::forget(up); // as if the process was killed mid-upload
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs/tmp"))
                .unwrap()
                .count(),
            1
        );
        BlobStore::open(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs/tmp"))
                .unwrap()
                .count(),
            0
        );
    }
}
