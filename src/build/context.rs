//! The build context of one location: which files go to the engine, under which names.
//!
//! [`BuildContext::prepare`] walks the build directory once (metadata only, nothing is read
//! into memory), applies `.dockerignore` exactly like the Docker CLI, checks the size limit and
//! settles the Dockerfile's name. Writing the tar ([`super::tar_stream`]) happens later and
//! streams file contents one buffer at a time. That tar is for the classic builder; BuildKit
//! reads the same folder through its session ([`super::buildkit::SyncedDirs`]).

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::buildkit::{DockerfileDir, SyncedDirs};
use super::dockerignore::{
    DOCKERIGNORE, DockerIgnore, ParentMatches, PatternError, ignore_file_candidates,
};

/// Modification time written for every entry (2000-01-01T00:00:00Z), so that identical inputs
/// give byte-identical tars whatever the checkout's file times are.
pub const DEFAULT_MTIME: u64 = 946_684_800;

/// The Dockerfile name Docker looks for when none is configured.
pub const DEFAULT_DOCKERFILE: &str = "Dockerfile";

/// What to put in one location's build context.
#[derive(Debug, Clone)]
pub struct ContextOptions {
    /// Location name, used in every error message.
    pub location: String,
    /// The build directory (the context root).
    pub directory: PathBuf,
    /// The Dockerfile; `None` means `Dockerfile` in `directory`. It may lie outside `directory`.
    pub dockerfile: Option<PathBuf>,
    /// Dockerfile text made here (no Dockerfile on disk); wins over `dockerfile`.
    pub generated_dockerfile: Option<String>,
    /// Largest allowed sum of file sizes in the context, in bytes.
    pub size_limit: Option<u64>,
    /// Modification time of every entry (seconds since the epoch).
    pub mtime: u64,
}

impl ContextOptions {
    pub fn new(location: impl Into<String>, directory: impl Into<PathBuf>) -> ContextOptions {
        ContextOptions {
            location: location.into(),
            directory: directory.into(),
            dockerfile: None,
            generated_dockerfile: None,
            size_limit: None,
            mtime: DEFAULT_MTIME,
        }
    }
}

/// One entry of the tar, in the order it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEntry {
    /// Path inside the context (relative, `/`-separated).
    pub path: PathBuf,
    pub kind: EntryKind,
    /// Permission bits (`0o7777` mask).
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Directory,
    /// A file read from disk when the tar is written.
    File,
    /// A symlink, stored as a link (never followed).
    Symlink {
        target: PathBuf,
    },
    Fifo,
    /// Content generated here (an outside Dockerfile, an amended `.dockerignore`).
    Generated {
        data: Vec<u8>,
    },
}

/// A prepared build context, ready to be written as a tar.
#[derive(Debug, Clone)]
pub struct BuildContext {
    pub(crate) location: String,
    pub(crate) root: PathBuf,
    pub(crate) entries: Vec<ContextEntry>,
    pub(crate) dockerfile: String,
    pub(crate) content_size: u64,
    pub(crate) size_limit: Option<u64>,
    pub(crate) mtime: u64,
    /// Where BuildKit's session reads the Dockerfile from, and its name there.
    session_dockerfile: (DockerfileDir, String),
}

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("location `{location}`: build directory {} is missing or not a directory", directory.display())]
    MissingDirectory {
        location: String,
        directory: PathBuf,
    },
    #[error(
        "location `{location}`: Dockerfile {} not found (set the location's `dockerfile` \
         setting, or add a Dockerfile to the build directory)",
        path.display()
    )]
    MissingDockerfile { location: String, path: PathBuf },
    #[error("location `{location}`: cannot read {}: {source}", path.display())]
    Io {
        location: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("location `{location}`: {}: {source}", path.display())]
    DockerIgnore {
        location: String,
        path: PathBuf,
        #[source]
        source: PatternError,
    },
    #[error(
        "location `{location}`: the build context in {} is larger than the limit of {} \
         (at least {} after .dockerignore); exclude files in .dockerignore or raise the limit",
        directory.display(), human_size(*limit), human_size(*size)
    )]
    TooLarge {
        location: String,
        directory: PathBuf,
        limit: u64,
        size: u64,
    },
    #[error(
        "location `{location}`: {} changed while the build context was being sent; build again",
        path.display()
    )]
    Changed { location: String, path: PathBuf },
    #[error("location `{location}`: the Docker engine stopped reading the build context")]
    Aborted { location: String },
}

impl BuildContext {
    /// Walks the build directory and decides every entry of the context.
    pub fn prepare(options: &ContextOptions) -> Result<BuildContext, ContextError> {
        let location = options.location.clone();
        let root = options.directory.clone();
        if !root.is_dir() {
            return Err(ContextError::MissingDirectory {
                location,
                directory: root,
            });
        }
        let io_err = |path: &Path| {
            let location = location.clone();
            let path = path.to_path_buf();
            move |source| ContextError::Io {
                location,
                path,
                source,
            }
        };

        // The same ignore file the plan reads: `<Dockerfile>.dockerignore`, else `.dockerignore`.
        let dockerfile_path = options
            .dockerfile
            .clone()
            .unwrap_or_else(|| root.join(DEFAULT_DOCKERFILE));
        let (ignore_path, ignore_text) = read_ignore_file(&root, &dockerfile_path, &io_err)?;
        let mut ignore = match (&ignore_path, &ignore_text) {
            (Some(path), Some(text)) => {
                DockerIgnore::parse(text).map_err(|source| ContextError::DockerIgnore {
                    location: location.clone(),
                    path: path.clone(),
                    source,
                })?
            }
            _ => DockerIgnore::default(),
        };

        let dockerfile = match &options.generated_dockerfile {
            Some(text) => Dockerfile::Generated(text.clone().into_bytes()),
            None => locate_dockerfile(options)?,
        };
        let session_dockerfile = dockerfile.session_source(&root);
        // Like the Docker CLI: the build files themselves are always sent, even when ignored
        // (the engine then leaves ignored ones out of the image).
        let mut build_files = Vec::new();
        if let Some(rel) = ignore_path.as_deref().and_then(|p| inside(&root, p)) {
            build_files.push(rel);
        }
        if let Dockerfile::Inside(rel) = &dockerfile {
            build_files.push(rel.clone());
        }
        for file in build_files {
            if ignore.matches_or_parent_matches(&file) {
                // A path is always a valid pattern once it passed through `clean`.
                let _ = ignore.push(&format!("!{file}"));
            }
        }

        let mut walker = Walker {
            options,
            ignore: &ignore,
            entries: Vec::new(),
            content_size: 0,
        };
        walker.walk(&root, Path::new(""), None)?;
        let Walker {
            mut entries,
            mut content_size,
            ..
        } = walker;

        let name = match dockerfile {
            Dockerfile::Inside(rel) => rel,
            Dockerfile::Outside(_) | Dockerfile::Generated(_) => {
                let data = match dockerfile {
                    Dockerfile::Outside(path) => std::fs::read(&path).map_err(io_err(&path))?,
                    Dockerfile::Generated(data) => data,
                    Dockerfile::Inside(_) => Vec::new(),
                };
                let name = generated_dockerfile_name(&data);
                content_size += data.len() as u64;
                // The engine removes what .dockerignore lists after reading the Dockerfile, so
                // the generated file never reaches the image (the Docker CLI does the same).
                let sent_ignore = root.join(DOCKERIGNORE);
                let original = match entries.iter().any(|e| e.path == Path::new(DOCKERIGNORE)) {
                    true => Some(std::fs::read(&sent_ignore).map_err(io_err(&sent_ignore))?),
                    false => None,
                };
                let original = original.map(|b| String::from_utf8_lossy(&b).into_owned());
                amend_dockerignore(&mut entries, original.as_deref(), &name);
                entries.retain(|e| e.path != Path::new(&name));
                entries.push(ContextEntry {
                    path: PathBuf::from(&name),
                    kind: EntryKind::Generated { data },
                    mode: 0o600,
                });
                name
            }
        };
        check_limit(options, content_size)?;

        Ok(BuildContext {
            location,
            root,
            entries,
            dockerfile: name,
            content_size,
            size_limit: options.size_limit,
            mtime: options.mtime,
            session_dockerfile,
        })
    }

    /// What a BuildKit build reads through its session instead of the tar: the context folder
    /// itself and the Dockerfile's folder; with the Dockerfile's name there.
    pub fn synced_dirs(&self) -> (SyncedDirs, String) {
        let (dockerfile, name) = self.session_dockerfile.clone();
        let dirs = SyncedDirs {
            context: self.root.clone(),
            dockerfile,
            mtime: self.mtime,
            size_limit: self.size_limit,
        };
        (dirs, name)
    }

    /// The Dockerfile's path inside the context: the build's `dockerfile` parameter.
    pub fn dockerfile(&self) -> &str {
        &self.dockerfile
    }

    /// Every entry, in tar order.
    pub fn entries(&self) -> &[ContextEntry] {
        &self.entries
    }

    /// Sum of the file sizes, as measured when the context was prepared.
    pub fn content_size(&self) -> u64 {
        self.content_size
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

enum Dockerfile {
    /// Relative path inside the context.
    Inside(String),
    Outside(PathBuf),
    /// Text made by [`super::dockerfile`].
    Generated(Vec<u8>),
}

impl Dockerfile {
    /// The folder BuildKit reads the Dockerfile from and its name there (as the Docker CLI
    /// splits `-f`): no hidden copy in the context is needed.
    fn session_source(&self, root: &Path) -> (DockerfileDir, String) {
        let split = |path: &Path| {
            let name = path.file_name().map_or_else(
                || DEFAULT_DOCKERFILE.to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            (DockerfileDir::Disk(dir.to_path_buf()), name)
        };
        match self {
            Dockerfile::Inside(rel) => split(&root.join(rel)),
            Dockerfile::Outside(path) => split(path),
            Dockerfile::Generated(data) => (
                DockerfileDir::Generated {
                    name: DEFAULT_DOCKERFILE.to_string(),
                    data: data.clone(),
                },
                DEFAULT_DOCKERFILE.to_string(),
            ),
        }
    }
}

/// The first ignore file that exists among the candidates, with its text.
fn read_ignore_file<F, E>(
    root: &Path,
    dockerfile: &Path,
    io_err: &F,
) -> Result<(Option<PathBuf>, Option<String>), ContextError>
where
    F: Fn(&Path) -> E,
    E: FnOnce(io::Error) -> ContextError,
{
    let candidates = ignore_file_candidates(&root.to_string_lossy(), &dockerfile.to_string_lossy());
    for candidate in candidates {
        let path = PathBuf::from(candidate);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                return Ok((Some(path), Some(text)));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
    }
    Ok((None, None))
}

/// `path` relative to `root` (`/`-separated) when it lies inside it.
fn inside(root: &Path, path: &Path) -> Option<String> {
    let real_root = root.canonicalize().ok()?;
    let real = path.canonicalize().ok()?;
    let rel = real.strip_prefix(&real_root).ok()?;
    rel.to_str().map(str::to_string)
}

fn locate_dockerfile(options: &ContextOptions) -> Result<Dockerfile, ContextError> {
    let root = &options.directory;
    let path = match &options.dockerfile {
        Some(path) => path.clone(),
        // Docker also accepts a lower-case `dockerfile` when `Dockerfile` is missing.
        None => [DEFAULT_DOCKERFILE, "dockerfile"]
            .iter()
            .map(|name| root.join(name))
            .find(|p| p.is_file())
            .unwrap_or_else(|| root.join(DEFAULT_DOCKERFILE)),
    };
    let missing = || ContextError::MissingDockerfile {
        location: options.location.clone(),
        path: path.clone(),
    };
    if !path.is_file() {
        return Err(missing());
    }
    // Symlinks resolved on both sides, as the Docker CLI does before deciding "inside".
    let real_file = path.canonicalize().map_err(|_| missing())?;
    let real_root = root.canonicalize().map_err(|source| ContextError::Io {
        location: options.location.clone(),
        path: root.clone(),
        source,
    })?;
    Ok(match real_file.strip_prefix(&real_root) {
        Ok(rel) if rel.to_str().is_some() => Dockerfile::Inside(rel.to_string_lossy().into_owned()),
        _ => Dockerfile::Outside(path),
    })
}

/// `.dockerfile.` plus a content hash: stable for identical inputs, unlikely to collide.
fn generated_dockerfile_name(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    format!(".dockerfile.{hex}")
}

/// Adds `name` to the context's `.dockerignore` (creating one that also ignores itself).
fn amend_dockerignore(entries: &mut Vec<ContextEntry>, original: Option<&str>, name: &str) {
    let data = match original {
        Some(text) => format!("{text}\n{name}\n"),
        None => format!("{DOCKERIGNORE}\n{name}\n"),
    }
    .into_bytes();
    match entries
        .iter_mut()
        .find(|e| e.path == Path::new(DOCKERIGNORE))
    {
        Some(entry) => entry.kind = EntryKind::Generated { data },
        None => entries.push(ContextEntry {
            path: PathBuf::from(DOCKERIGNORE),
            kind: EntryKind::Generated { data },
            mode: 0o600,
        }),
    }
}

fn check_limit(options: &ContextOptions, size: u64) -> Result<(), ContextError> {
    match options.size_limit {
        Some(limit) if size > limit => Err(ContextError::TooLarge {
            location: options.location.clone(),
            directory: options.directory.clone(),
            limit,
            size,
        }),
        _ => Ok(()),
    }
}

struct Walker<'a> {
    options: &'a ContextOptions,
    ignore: &'a DockerIgnore,
    entries: Vec<ContextEntry>,
    content_size: u64,
}

impl Walker<'_> {
    /// Depth-first in byte order of names, like Go's `filepath.Walk` in the Docker CLI.
    fn walk(
        &mut self,
        dir: &Path,
        rel_dir: &Path,
        parent: Option<&ParentMatches>,
    ) -> Result<(), ContextError> {
        let mut names: Vec<OsString> = std::fs::read_dir(dir)
            .and_then(|it| it.map(|e| e.map(|e| e.file_name())).collect())
            .map_err(|source| self.io_error(dir, source))?;
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let rel = rel_dir.join(&name);
            let rel_text = rel.to_string_lossy();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| self.io_error(&path, e))?;
            let file_type = meta.file_type();
            let (excluded, matches) = self.ignore.matches(&rel_text, parent);
            if excluded {
                // An excluded directory is still entered when an exception may re-include
                // something below it; the directory itself is not sent then.
                if file_type.is_dir()
                    && self.ignore.has_exceptions()
                    && self.ignore.exception_below(&rel_text)
                {
                    self.walk(&path, &rel, Some(&matches))?;
                }
                continue;
            }
            let mode = meta.permissions().mode() & 0o7777;
            let kind = if file_type.is_dir() {
                EntryKind::Directory
            } else if file_type.is_file() {
                // Hard links are sent as separate copies: the image content is the same as with
                // the CLI's tar hard links, and the tar stays simple to stream.
                self.content_size += meta.len();
                check_limit(self.options, self.content_size)?;
                EntryKind::File
            } else if file_type.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| self.io_error(&path, e))?;
                EntryKind::Symlink { target }
            } else if file_type.is_fifo() {
                EntryKind::Fifo
            } else {
                // Sockets and device nodes: the Docker CLI cannot send them either.
                continue;
            };
            let is_dir = kind == EntryKind::Directory;
            self.entries.push(ContextEntry {
                path: rel.clone(),
                kind,
                mode,
            });
            if is_dir {
                self.walk(&path, &rel, Some(&matches))?;
            }
        }
        Ok(())
    }

    fn io_error(&self, path: &Path, source: io::Error) -> ContextError {
        ContextError::Io {
            location: self.options.location.clone(),
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Bytes as a short human figure (`512 B`, `1.5 KiB`, `20.0 MiB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
