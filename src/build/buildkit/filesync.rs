//! BuildKit's file sync (`moby.filesync.v1.FileSync/DiffCopy`): the engine reads the build
//! context and the Dockerfile from us through the session, as it does from `docker buildx
//! build`, instead of from a tar in the request. The Dockerfile frontend asks for each folder
//! with the patterns it wants (the Dockerfile and its own ignore file; `.dockerignore`; then
//! the context with `.dockerignore`'s patterns as excludes), so what reaches the engine follows
//! exactly the rules it applies for `docker buildx build`: fsutil's filtered walk, reproduced
//! here. A Dockerfile or `.dockerignore` that `.dockerignore` lists is read, and is not in the
//! context.
//!
//! The protocol (fsutil `send.go`): one STAT packet per entry in walk order, then an empty
//! STAT; the engine asks for regular files by their index (REQ), each answered with DATA
//! packets and an empty DATA; FIN ends the exchange.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;

use bollard::fsutil::types::packet::PacketType;
use bollard::fsutil::types::{Packet, Stat};
use bollard::moby::filesync::packet::file_sync_server::FileSync;
use futures_util::Stream;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::build::context::human_size;
use crate::plan::dockerignore::{DockerIgnore, ParentMatches};

/// The BuildKit session's name for the build context folder.
const CONTEXT: &str = "context";
/// Its name for the folder the Dockerfile is read from.
const DOCKERFILE: &str = "dockerfile";
/// Bytes of file content per DATA packet.
const CHUNK: usize = 64 * 1024;
/// Go's `os.FileMode` bits, which fsutil's stats carry instead of Unix mode bits.
const GO_DIR: u32 = 1 << 31;
const GO_SYMLINK: u32 = 1 << 27;
const GO_NAMED_PIPE: u32 = 1 << 25;
const GO_SETUID: u32 = 1 << 23;
const GO_SETGID: u32 = 1 << 22;
const GO_STICKY: u32 = 1 << 20;

/// The two folders a BuildKit build reads through its session.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncedDirs {
    /// The build context.
    pub context: PathBuf,
    /// Where the Dockerfile is read from.
    pub dockerfile: DockerfileDir,
    /// Modification time given to every entry (seconds since the epoch), so identical inputs
    /// make identical layers whatever the checkout's file times are.
    pub mtime: u64,
    /// Largest sum of file sizes one folder may send (`--max-context-size`).
    pub size_limit: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DockerfileDir {
    /// The folder holding the Dockerfile (and its `<name>.dockerignore`).
    Disk(PathBuf),
    /// A Dockerfile made here, served as the only file of the folder.
    Generated { name: String, data: Vec<u8> },
}

/// Serves [`SyncedDirs`] to the engine.
pub(crate) struct FileSyncService(pub SyncedDirs);

/// Where the content of one sent entry comes from.
#[derive(Debug, Clone)]
enum Source {
    /// A file, and the size its stat told the engine.
    Disk(PathBuf, u64),
    Memory(Vec<u8>),
}

/// One entry of the walk: what the engine is told, and where a regular file's bytes are.
#[derive(Debug)]
struct Entry {
    stat: Stat,
    source: Option<Source>,
}

type PacketStream = Pin<Box<dyn Stream<Item = Result<Packet, Status>> + Send>>;

#[tonic::async_trait]
impl FileSync for FileSyncService {
    type DiffCopyStream = PacketStream;
    type TarStreamStream = PacketStream;

    async fn diff_copy(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<PacketStream>, Status> {
        let dir = metadata_values(request.metadata(), "dir-name")
            .into_iter()
            .next()
            .unwrap_or_default();
        let mtime_ns = i64::try_from(self.0.mtime)
            .unwrap_or(0)
            .saturating_mul(1_000_000_000);
        let entries = match (dir.as_str(), &self.0.dockerfile) {
            (DOCKERFILE, DockerfileDir::Generated { name, data }) => {
                vec![memory_file(name, data, mtime_ns)]
            }
            (CONTEXT | DOCKERFILE, _) => {
                let root = match (dir.as_str(), &self.0.dockerfile) {
                    (DOCKERFILE, DockerfileDir::Disk(path)) => path.clone(),
                    _ => self.0.context.clone(),
                };
                let filter = Filter::from_metadata(request.metadata(), &root)?;
                let entries = tokio::task::spawn_blocking(move || walk(&root, &filter, mtime_ns))
                    .await
                    .map_err(|e| Status::internal(e.to_string()))?
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                self.check_limit(&entries)?;
                entries
            }
            (other, _) => {
                return Err(Status::not_found(format!(
                    "no access allowed to dir {other:?}"
                )));
            }
        };
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(send(entries, request.into_inner(), tx));
        Ok(Response::new(Box::pin(receiver_stream(rx))))
    }

    async fn tar_stream(
        &self,
        _: Request<Streaming<Packet>>,
    ) -> Result<Response<PacketStream>, Status> {
        Err(Status::unimplemented("tar_stream"))
    }
}

impl FileSyncService {
    /// `--max-context-size` holds for what is sent (the context was measured when prepared;
    /// it may have grown since).
    fn check_limit(&self, entries: &[Entry]) -> Result<(), Status> {
        let Some(limit) = self.0.size_limit else {
            return Ok(());
        };
        let size: u64 = entries
            .iter()
            .filter(|e| e.source.is_some())
            .map(|e| u64::try_from(e.stat.size).unwrap_or(0))
            .sum();
        if size <= limit {
            return Ok(());
        }
        Err(Status::resource_exhausted(format!(
            "the build context in {} is larger than the limit of {} ({} after .dockerignore); \
             exclude files in .dockerignore or raise the limit",
            self.0.context.display(),
            human_size(limit),
            human_size(size)
        )))
    }
}

/// The receiver of `rx` as a stream.
fn receiver_stream(
    rx: mpsc::Receiver<Result<Packet, Status>>,
) -> impl Stream<Item = Result<Packet, Status>> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Runs one exchange: the stats, then the files the engine asks for, until FIN. Requests are
/// read while stats are still being sent, as fsutil's sender does, so neither side waits on
/// the other's flow control.
async fn send(
    entries: Vec<Entry>,
    mut incoming: Streaming<Packet>,
    tx: mpsc::Sender<Result<Packet, Status>>,
) {
    let mut stats = Vec::with_capacity(entries.len());
    let mut sources = Vec::with_capacity(entries.len());
    for entry in entries {
        stats.push(entry.stat);
        sources.push(entry.source);
    }
    let stats_tx = tx.clone();
    let send_stats = async move {
        for stat in stats {
            let packet = Packet {
                r#type: PacketType::PacketStat as i32,
                stat: Some(stat),
                ..Default::default()
            };
            if stats_tx.send(Ok(packet)).await.is_err() {
                return;
            }
        }
        let last = Packet {
            r#type: PacketType::PacketStat as i32,
            ..Default::default()
        };
        let _ = stats_tx.send(Ok(last)).await;
    };
    let answer = async move {
        loop {
            let packet = match incoming.message().await {
                Ok(Some(packet)) => packet,
                Ok(None) | Err(_) => return,
            };
            match PacketType::try_from(packet.r#type) {
                Ok(PacketType::PacketReq) => {
                    let source = usize::try_from(packet.id)
                        .ok()
                        .and_then(|i| sources.get_mut(i))
                        .and_then(Option::take);
                    let sent = match source {
                        Some(source) => send_file(packet.id, source, &tx).await,
                        None => Err(Status::invalid_argument(format!(
                            "invalid file id {}",
                            packet.id
                        ))),
                    };
                    if let Err(status) = sent {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                }
                Ok(PacketType::PacketFin) => {
                    let fin = Packet {
                        r#type: PacketType::PacketFin as i32,
                        ..Default::default()
                    };
                    let _ = tx.send(Ok(fin)).await;
                    return;
                }
                Ok(PacketType::PacketErr) => return,
                _ => {}
            }
        }
    };
    tokio::join!(send_stats, answer);
}

/// Sends one file's bytes as DATA packets, then the empty DATA that ends it.
async fn send_file(
    id: u32,
    source: Source,
    tx: &mpsc::Sender<Result<Packet, Status>>,
) -> Result<(), Status> {
    let data = |bytes: Vec<u8>| Packet {
        r#type: PacketType::PacketData as i32,
        id,
        data: bytes,
        ..Default::default()
    };
    let closed = |_| Status::cancelled("the engine stopped reading");
    match source {
        Source::Memory(bytes) => {
            for chunk in bytes.chunks(CHUNK) {
                tx.send(Ok(data(chunk.to_vec()))).await.map_err(closed)?;
            }
        }
        Source::Disk(path, size) => {
            let unreadable = |e: std::io::Error| {
                Status::unavailable(format!("cannot read {}: {e}", path.display()))
            };
            // The engine was told the size: a file that changed since would make a layer that
            // matches neither version (the tar path checks the same).
            let changed = || {
                Status::aborted(format!(
                    "{} changed while the build context was being sent; build again",
                    path.display()
                ))
            };
            let file = tokio::fs::File::open(&path).await.map_err(unreadable)?;
            let mut file = file.take(size.saturating_add(1));
            let mut sent = 0u64;
            loop {
                let mut buffer = vec![0u8; CHUNK];
                let read = file.read(&mut buffer).await.map_err(unreadable)?;
                if read == 0 {
                    break;
                }
                sent += read as u64;
                if sent > size {
                    return Err(changed());
                }
                buffer.truncate(read);
                tx.send(Ok(data(buffer))).await.map_err(closed)?;
            }
            if sent != size {
                return Err(changed());
            }
        }
    }
    tx.send(Ok(data(Vec::new()))).await.map_err(closed)
}

/// What the engine asked for: fsutil's `FilterOpt` from the request's metadata.
#[derive(Debug, Default)]
struct Filter {
    include: Option<DockerIgnore>,
    exclude: Option<DockerIgnore>,
}

impl Filter {
    /// The filter for walking `root` (follow paths are resolved in it).
    fn from_metadata(
        metadata: &tonic::metadata::MetadataMap,
        root: &Path,
    ) -> Result<Filter, Status> {
        let mut includes = metadata_values(metadata, "include-patterns");
        includes.extend(follow_links(
            root,
            &metadata_values(metadata, "followpaths"),
        ));
        let excludes = metadata_values(metadata, "exclude-patterns");
        let matcher = |patterns: Vec<String>| -> Result<Option<DockerIgnore>, Status> {
            if patterns.is_empty() {
                return Ok(None);
            }
            let mut matcher = DockerIgnore::default();
            for pattern in &patterns {
                matcher
                    .push(pattern)
                    .map_err(|e| Status::invalid_argument(format!("pattern {pattern}: {e}")))?;
            }
            Ok(Some(matcher))
        };
        Ok(Filter {
            include: matcher(includes)?,
            exclude: matcher(excludes)?,
        })
    }
}

/// fsutil's `FollowLinks` for whole paths: each path and, when it is a symlink, what it points
/// to inside `root` (an absolute target counts from `root`), link after link. So a
/// `.dockerignore` that is a link is read through it, as by `docker buildx build`.
fn follow_links(root: &Path, paths: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for path in paths {
        let mut current = clean_relative(path);
        // A loop of links ends when a path comes round again; 40 hops as the kernel allows.
        for _ in 0..40 {
            if current.is_empty() || out.contains(&current) {
                break;
            }
            out.push(current.clone());
            let Ok(target) = std::fs::read_link(root.join(&current)) else {
                break;
            };
            let target = target.to_string_lossy();
            current = match (target.starts_with('/'), current.rsplit_once('/')) {
                (true, _) | (false, None) => clean_relative(&target),
                (false, Some((dir, _))) => clean_relative(&format!("{dir}/{target}")),
            };
        }
    }
    out
}

/// `a/./b/../c` as `a/c`, relative to the root, never above it.
fn clean_relative(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

/// The values of one metadata key, URL-decoded when the engine says it encoded them
/// (`<key>-encoded: true`, for non-ASCII patterns).
fn metadata_values(metadata: &tonic::metadata::MetadataMap, key: &str) -> Vec<String> {
    let encoded = metadata
        .get(format!("{key}-encoded"))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    metadata
        .get_all(key)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| {
            if encoded {
                url_unescape(v)
            } else {
                v.to_string()
            }
        })
        .collect()
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte.
fn url_unescape(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn memory_file(name: &str, data: &[u8], mtime_ns: i64) -> Entry {
    Entry {
        stat: Stat {
            path: name.to_string(),
            mode: 0o644,
            size: data.len() as i64,
            mod_time: mtime_ns,
            ..Default::default()
        },
        source: Some(Source::Memory(data.to_vec())),
    }
}

/// A directory on the walk's path: its stat waits until something below it is sent when the
/// directory itself was filtered out (fsutil sends the parents of every sent entry).
struct Parent {
    stat: Option<Stat>,
    include: ParentMatches,
    exclude: ParentMatches,
}

/// fsutil's filtered walk of `root`: names in byte order, depth first.
fn walk(root: &Path, filter: &Filter, mtime_ns: i64) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut parents = Vec::new();
    walk_dir(root, "", filter, mtime_ns, &mut parents, &mut out)?;
    Ok(out)
}

fn walk_dir(
    dir: &Path,
    rel_dir: &str,
    filter: &Filter,
    mtime_ns: i64,
    parents: &mut Vec<Parent>,
    out: &mut Vec<Entry>,
) -> std::io::Result<()> {
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)
        .and_then(|it| it.map(|e| e.map(|e| e.file_name())).collect())
        .map_err(|e| naming(dir, e))?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let utf8 = name.to_str().is_some();
        let name = name.to_string_lossy();
        let rel = if rel_dir.is_empty() {
            name.into_owned()
        } else {
            format!("{rel_dir}/{name}")
        };
        let meta = std::fs::symlink_metadata(&path).map_err(|e| naming(&path, e))?;
        let file_type = meta.file_type();
        let is_dir = file_type.is_dir();
        let parent = parents.last();
        let include = parent.map(|p| &p.include);
        let (include, include_info) = judge(filter.include.as_ref(), false, &rel, include, is_dir);
        let exclude = parent.map(|p| &p.exclude);
        let (exclude, exclude_info) = judge(filter.exclude.as_ref(), true, &rel, exclude, is_dir);
        if include == Verdict::Prune || exclude == Verdict::Prune {
            continue;
        }
        let skip = include == Verdict::Skip || exclude == Verdict::Skip;
        let Some(stat) = stat_of(&path, &rel, &meta, mtime_ns)? else {
            continue;
        };
        // The sync protocol carries names as UTF-8: sent lossily, the file would arrive
        // renamed (and two such names could collide).
        if !skip && !utf8 {
            return Err(naming(
                &path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "its name is not UTF-8, which BuildKit's file sync cannot send: rename \
                     it, or leave it out with .dockerignore",
                ),
            ));
        }
        if !skip {
            // Parents filtered out themselves are sent before their first sent child.
            for parent in parents.iter_mut() {
                if let Some(stat) = parent.stat.take() {
                    out.push(Entry { stat, source: None });
                }
            }
        }
        if is_dir {
            let pending = skip.then(|| stat.clone());
            if !skip {
                out.push(Entry { stat, source: None });
            }
            parents.push(Parent {
                stat: pending,
                include: include_info,
                exclude: exclude_info,
            });
            walk_dir(&path, &rel, filter, mtime_ns, parents, out)?;
            parents.pop();
        } else if !skip {
            let source = file_type
                .is_file()
                .then(|| Source::Disk(path.clone(), meta.len()));
            out.push(Entry { stat, source });
        }
    }
    Ok(())
}

/// `e` with the path it is about, for the build's error message.
fn naming(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display()))
}

/// What one pattern list makes of an entry.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Pass,
    /// Not sent itself; a directory is still walked (something below may pass).
    Skip,
    /// A directory left unwalked.
    Prune,
}

/// fsutil's use of an include (`exclude` false) or exclude list on `rel`, given its parent's
/// results; also the results for `rel`'s children.
fn judge(
    matcher: Option<&DockerIgnore>,
    exclude: bool,
    rel: &str,
    parent: Option<&ParentMatches>,
    is_dir: bool,
) -> (Verdict, ParentMatches) {
    let Some(matcher) = matcher else {
        return (Verdict::Pass, ParentMatches::default());
    };
    let (hit, info) = matcher.matches(rel, parent);
    let verdict = if hit != exclude {
        Verdict::Pass
    } else if is_dir && pruned(matcher, exclude, rel) {
        Verdict::Prune
    } else {
        Verdict::Skip
    };
    (verdict, info)
}

/// Whether a directory that does not pass `matcher` can be left unwalked: fsutil's shortcut
/// when the patterns that could bring something below it back (`exceptions`: the `!` ones of
/// an exclude list, else an include list's own) are all plain paths and none lies below it.
fn pruned(matcher: &DockerIgnore, exceptions: bool, dir: &str) -> bool {
    let dir_slash = format!("{dir}/");
    matcher.plain_prefixes(exceptions).is_some_and(|prefixes| {
        !prefixes
            .iter()
            .any(|p| format!("{p}/").starts_with(&dir_slash))
    })
}

/// fsutil's stat of one entry (owner root, as the Docker CLI maps it; the fixed mtime); `None`
/// for sockets and devices, which are not sent.
fn stat_of(
    path: &Path,
    rel: &str,
    meta: &std::fs::Metadata,
    mtime_ns: i64,
) -> std::io::Result<Option<Stat>> {
    let file_type = meta.file_type();
    let unix = meta.mode();
    let mut mode = unix & 0o777;
    for (bit, go) in [
        (0o4000, GO_SETUID),
        (0o2000, GO_SETGID),
        (0o1000, GO_STICKY),
    ] {
        if unix & bit != 0 {
            mode |= go;
        }
    }
    let mut stat = Stat {
        path: rel.to_string(),
        mod_time: mtime_ns,
        ..Default::default()
    };
    if file_type.is_dir() {
        mode |= GO_DIR;
    } else if file_type.is_symlink() {
        mode |= GO_SYMLINK;
        let target = std::fs::read_link(path).map_err(|e| naming(path, e))?;
        stat.linkname = target.to_string_lossy().into_owned();
        stat.size = stat.linkname.len() as i64;
    } else if file_type.is_fifo() {
        mode |= GO_NAMED_PIPE;
    } else if file_type.is_file() {
        stat.size = i64::try_from(meta.len()).unwrap_or(i64::MAX);
    } else {
        return Ok(None);
    }
    stat.mode = mode;
    Ok(Some(stat))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> Filter {
        let matcher = |patterns: &[&str]| {
            (!patterns.is_empty()).then(|| {
                let mut m = DockerIgnore::default();
                for p in patterns {
                    m.push(p).unwrap();
                }
                m
            })
        };
        Filter {
            include: matcher(include),
            exclude: matcher(exclude),
        }
    }

    fn sent(root: &Path, filter: &Filter) -> Vec<String> {
        walk(root, filter, 0)
            .unwrap()
            .into_iter()
            .map(|e| e.stat.path)
            .collect()
    }

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for file in files {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, file).unwrap();
        }
        dir
    }

    #[test]
    fn a_name_that_is_not_utf8_fails_unless_it_is_left_out() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tree(&["a.py"]);
        let odd = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
        std::fs::write(dir.path().join(odd), "x").unwrap();
        let err = walk(dir.path(), &filter(&[], &[]), 0).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
        assert!(err.to_string().contains("caf"), "names the file: {err}");
        assert_eq!(sent(dir.path(), &filter(&[], &["*.txt"])), ["a.py"]);
    }

    #[test]
    fn excludes_follow_fsutil_including_glob_exceptions_and_lazy_parents() {
        let dir = tree(&[
            "Dockerfile",
            "a.py",
            "vendor/v.py",
            "vendor/v.txt",
            "z/x.txt",
        ]);
        // A glob exception makes fsutil walk an excluded folder and send it as a parent.
        let got = sent(dir.path(), &filter(&[], &["*", "!**/*.py"]));
        assert_eq!(got, ["a.py", "vendor", "vendor/v.py"]);
        // Without exceptions an excluded folder is not entered at all.
        let got = sent(dir.path(), &filter(&[], &["vendor", "Dockerfile"]));
        assert_eq!(got, ["a.py", "z", "z/x.txt"]);
    }

    #[test]
    fn includes_pick_files_and_their_parents() {
        let dir = tree(&[
            "Dockerfile",
            "Dockerfile.dockerignore",
            "sub/Dockerfile",
            "x",
        ]);
        let got = sent(
            dir.path(),
            &filter(&["Dockerfile", "Dockerfile.dockerignore"], &[]),
        );
        assert_eq!(got, ["Dockerfile", "Dockerfile.dockerignore"]);
        let got = sent(dir.path(), &filter(&["sub/Dockerfile"], &[]));
        assert_eq!(got, ["sub", "sub/Dockerfile"]);
    }

    #[test]
    fn stats_carry_go_modes() {
        let dir = tree(&["f"]);
        std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
        let entries = walk(dir.path(), &Filter::default(), 7).unwrap();
        let f = &entries[0].stat;
        assert_eq!((f.path.as_str(), f.size, f.mod_time), ("f", 1, 7));
        assert_eq!(f.mode & GO_DIR, 0);
        let l = &entries[1].stat;
        assert_eq!(l.mode & GO_SYMLINK, GO_SYMLINK);
        assert_eq!(l.linkname, "f");
        assert!(entries[1].source.is_none());
    }

    #[test]
    fn follow_paths_take_link_targets_along() {
        let dir = tree(&["real/ignore", "x"]);
        std::os::unix::fs::symlink("real/ignore", dir.path().join(".dockerignore")).unwrap();
        std::os::unix::fs::symlink("/x", dir.path().join("real/abs")).unwrap();
        let follow = |p: &str| follow_links(dir.path(), &[p.to_string()]);
        assert_eq!(follow(".dockerignore"), [".dockerignore", "real/ignore"]);
        assert_eq!(follow("./real/../real/abs"), ["real/abs", "x"]);
        assert_eq!(follow("missing"), ["missing"]);
        let got = sent(dir.path(), &filter(&[".dockerignore", "real/ignore"], &[]));
        assert_eq!(got, [".dockerignore", "real", "real/ignore"]);
    }

    #[test]
    fn encoded_metadata_is_decoded() {
        assert_eq!(url_unescape("caf%C3%A9+x"), "café x");
        assert_eq!(url_unescape("100%"), "100%");
    }
}
