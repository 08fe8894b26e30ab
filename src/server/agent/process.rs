//! Python-executable locations as processes: `python3.X source.pex` with `PEX_PATH=deps.pex`,
//! started in about the time Python takes to import the code (no image, no engine: the point
//! of these deploys), in their own process group with SIGINT/SIGTERM reset to their defaults
//! (a server inheriting an ignored SIGINT ignores SIGTERM too: research §8.2), an environment
//! of only PATH, the PEX variables, `DAGSTER_*` and the document's variables, and, when `serve`
//! runs as root, as an unprivileged user (`--code-server-user`).
//!
//! Files live under the run folder (`--code-server-dir`), away from the data folder's tokens
//! and signing key: `files/` (the deps and source files, copied once by name, which carries
//! their hash), `pex-root/` (PEX_ROOT, shared so that deps unpack once), one folder per code
//! server (its home and log) and `state/` (one pid file per code server, with the process's
//! start time so a restarted `serve` adopts exactly its own processes; user code cannot write it).

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::spec::{Spec, short};
use crate::child_process::signal_group;

/// Imports the location folder the source archive carries (`working_directory/root`) as
/// Dagster's working directory, then runs the `dagster` command line with the arguments.
const BOOTSTRAP: &str = "\
import os, sys
try:
    import working_directory
    root = os.path.join(os.path.dirname(working_directory.__file__), 'root')
    if os.path.isdir(root):
        os.environ['DAGSTER_WORKING_DIRECTORY'] = root
except ImportError:
    pass
from dagster._cli import main
sys.argv = ['dagster'] + sys.argv[1:]
main()
";
/// How long a stopped code server has to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Lines of a code server's log quoted when it exits before serving.
pub(super) const LOG_TAIL_LINES: usize = 30;

/// A running code-server process.
#[derive(Debug)]
pub(crate) struct Proc {
    pub pid: i32,
    /// `None` for an adopted process (another `serve` started it).
    child: Option<Child>,
    start_time: u64,
    /// Its working folder, the code-server user's.
    dir: PathBuf,
    /// Its output, in a folder only `serve` may write: the code server writes through the
    /// descriptors it inherited, and `serve` never opens a path the code server controls
    /// (a symlink planted there would make `serve` read or truncate any file).
    log: PathBuf,
    state_file: PathBuf,
}

/// What a pid file records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub pid: i32,
    pub start_time: u64,
    pub port: u16,
    pub deployment: String,
    pub location: String,
    pub revision: i64,
    pub key: String,
    /// Names its folder, log and pid file: unique per start, so stopping one code server never
    /// removes the files of a later one with the same key. (Absent in pid files of older
    /// versions, whose folder was named by the key.)
    #[serde(default)]
    pub name: Option<String>,
}

impl Record {
    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_else(|| short(&self.key))
    }
}

pub(crate) struct Runner {
    root: PathBuf,
    /// `(uid, gid)` to run code servers as.
    user: Option<(u32, u32)>,
}

impl Runner {
    /// Prepares the run folder; `user` is looked up now (a missing user is a start-up error).
    pub(crate) fn new(root: PathBuf, user: Option<&str>) -> Result<Self, String> {
        let user = user.map(lookup_user).transpose()?;
        private_owned_dir(&root, 0o755, None).map_err(|e| {
            format!(
                "cannot prepare the code-server folder {}: {e}",
                root.display()
            )
        })?;
        for (sub, mode) in [("files", 0o755), ("state", 0o700), ("logs", 0o700)] {
            private_owned_dir(&root.join(sub), mode, None)
                .map_err(|e| format!("cannot prepare {}: {e}", root.join(sub).display()))?;
        }
        let pex_root = root.join("pex-root");
        private_owned_dir(&pex_root, 0o700, user)
            .and_then(|()| give(&pex_root, user))
            .map_err(|e| format!("cannot prepare {}: {e}", pex_root.display()))?;
        Ok(Runner { root, user })
    }

    /// Starts the code server of `spec` on 127.0.0.1:`port`. The error is the load error.
    pub(crate) fn start(
        &self,
        spec: &Spec,
        python_version: &str,
        deps: &Path,
        source: &Path,
        port: u16,
    ) -> Result<Proc, String> {
        let location = &spec.location;
        let python_name = format!("python{python_version}");
        let python = find_on_path(&python_name, self.user).ok_or_else(|| {
            let whose = match self.user {
                Some((uid, _)) => format!(" that code-server user {uid} may run (not under a private home folder)"),
                None => String::new(),
            };
            format!(
                "location '{location}' needs Python {python_version}, and no `{python_name}`{whose} \
                 is on the PATH of `dagster-deploy serve`; install it on the server's host (e.g. \
                 `apt-get install {python_name}`, or uv/pyenv) and restart serve, or deploy with \
                 the --python-version the server has"
            )
        })?;
        let io_error = |what: &str, e: io::Error| format!("location '{location}': {what}: {e}");
        let deps = self
            .shared_file(deps)
            .map_err(|e| io_error("cannot copy the deps file", e))?;
        let source = self
            .shared_file(source)
            .map_err(|e| io_error("cannot copy the source file", e))?;
        let name = format!("{}-{}", short(&spec.key), unique_suffix());
        let (dir, log_path) = self.files_of(&name);
        private_owned_dir(&dir, 0o700, self.user)
            .and_then(|()| give(&dir, self.user))
            .map_err(|e| io_error("cannot create its folder", e))?;
        let log = fs::File::create(&log_path).map_err(|e| io_error("cannot create its log", e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| io_error("cannot open its log", e))?;
        let python_dir = python.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut cmd = Command::new(&python);
        cmd.arg(&source)
            .args(["-c", BOOTSTRAP, "api", "grpc", "--lazy-load-user-code"])
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["--fixed-server-id", &spec.server_id()])
            .env_clear()
            // The document's variables first: they never replace the agent's.
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .env(
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", python_dir.display()),
            )
            .env("HOME", &dir)
            .env("LANG", "C.UTF-8")
            .env("PEX_PATH", &deps)
            .env("PEX_ROOT", self.root.join("pex-root"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        crate::child_process::own_group_default_signals(&mut cmd);
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        let child = cmd
            .spawn()
            .map_err(|e| io_error(&format!("cannot start {}", python.display()), e))?;
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        let start_time = start_time(pid).unwrap_or(0);
        let state_file = self.root.join("state").join(format!("{name}.json"));
        let record = Record {
            pid,
            start_time,
            port,
            deployment: spec.deployment.clone(),
            location: spec.location.clone(),
            revision: spec.revision,
            key: spec.key.clone(),
            name: Some(name),
        };
        if let Err(e) = serde_json::to_vec(&record)
            .map_err(io::Error::other)
            .and_then(|bytes| fs::write(&state_file, bytes))
        {
            tracing::warn!(location = %location, "cannot write {}: {e}", state_file.display());
        }
        Ok(Proc {
            pid,
            child: Some(child),
            start_time,
            dir,
            log: log_path,
            state_file,
        })
    }

    /// The working folder and the log of the code server called `name`.
    fn files_of(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.root.join(name),
            self.root.join("logs").join(format!("{name}.log")),
        )
    }

    /// A copy of a stored file under `files/`, readable by the code-server user (the data
    /// folder is not); named as stored, so each content is copied once.
    fn shared_file(&self, stored: &Path) -> io::Result<PathBuf> {
        let name = stored
            .file_name()
            .ok_or_else(|| io::Error::other("no file name"))?;
        let files = self.root.join("files");
        let target = files.join(name);
        if target.exists() {
            return Ok(target);
        }
        // A temporary file of its own: several code servers start at once, often with the
        // same deps file, and a shared name would mix their copies.
        let mut tmp = tempfile::NamedTempFile::new_in(&files)?;
        io::copy(&mut fs::File::open(stored)?, tmp.as_file_mut())?;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644))?;
        tmp.persist(&target).map_err(|e| e.error)?;
        Ok(target)
    }

    /// Processes a previous `serve` left running (their pid files match a live process);
    /// stale pid files are removed.
    pub(crate) fn adopt(&self) -> Vec<(Record, Proc)> {
        let state = self.root.join("state");
        let Ok(entries) = fs::read_dir(&state) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let record: Option<Record> = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            match record {
                Some(r) if r.pid > 1 && start_time(r.pid) == Some(r.start_time) => {
                    let (dir, log) = self.files_of(r.name());
                    let proc = Proc {
                        pid: r.pid,
                        child: None,
                        start_time: r.start_time,
                        dir,
                        log,
                        state_file: path,
                    };
                    found.push((r, proc));
                }
                _ => {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        found
    }
}

impl Proc {
    /// `None` while running; the exit code once it ended (`-1` when unknown: killed by a
    /// signal, or an adopted process that is gone).
    pub(crate) fn exited(&mut self) -> Option<i64> {
        match &mut self.child {
            Some(child) => match child.try_wait() {
                Ok(None) => None,
                Ok(Some(status)) => Some(status.code().map_or(-1, i64::from)),
                Err(_) => Some(-1),
            },
            None => (start_time(self.pid) != Some(self.start_time)).then_some(-1),
        }
    }

    /// The end of its log, for a load error when it exits before serving.
    pub(crate) fn log_tail(&self) -> String {
        tail(&self.log, LOG_TAIL_LINES)
    }

    /// SIGTERM to its process group, a grace period, then SIGKILL; removes its files.
    pub(crate) fn stop(mut self) {
        if self.exited().is_none() {
            signal_group(self.pid, libc::SIGTERM);
            let deadline = Instant::now() + STOP_GRACE;
            while self.exited().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // The group may hold children of the server even when the server itself is gone.
        signal_group(self.pid, libc::SIGKILL);
        if let Some(child) = &mut self.child {
            let _ = child.wait();
        }
        let _ = fs::remove_file(&self.state_file);
        let _ = fs::remove_file(&self.log);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// 8 random hex digits: tells apart the files of two starts of one key.
fn unique_suffix() -> String {
    let mut bytes = [0u8; 4];
    // Without randomness, the time still tells two starts apart.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        bytes = nanos.to_le_bytes();
    }
    crate::protocol::hex(&bytes)
}

/// The process's start time in clock ticks since boot (`/proc/<pid>/stat`, field 22): with
/// the pid, it names one process across pid reuse.
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // A zombie has exited: not running.
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// The first `name` on serve's PATH that `user` (serve's own user when `None`) may run.
fn find_on_path(name: &str, user: Option<(u32, u32)>) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                && user.is_none_or(|u| runnable_by(p, u))
        })
}

/// Whether `user` may run `file`: execute permission on it and on every folder above it (a
/// Python under root's 0700 home is no use to `nobody`).
fn runnable_by(file: &Path, (uid, gid): (u32, u32)) -> bool {
    let Ok(real) = fs::canonicalize(file) else {
        return false;
    };
    real.ancestors().all(|p| {
        fs::metadata(p).is_ok_and(|m| {
            let mode = m.mode();
            (m.uid() == uid && mode & 0o100 != 0)
                || (m.gid() == gid && mode & 0o010 != 0)
                || mode & 0o001 != 0
        })
    })
}

/// `name`'s uid and gid from the password database.
fn lookup_user(name: &str) -> Result<(u32, u32), String> {
    let c_name = std::ffi::CString::new(name)
        .map_err(|_| format!("--code-server-user {name:?} is not a user name"))?;
    // SAFETY: getpwnam returns a pointer to static storage or null; read at once, before any
    // other call could overwrite it (start-up, one thread does this).
    let entry = unsafe { libc::getpwnam(c_name.as_ptr()) };
    if entry.is_null() {
        return Err(format!(
            "--code-server-user {name}: no such user on this host; create it or name another"
        ));
    }
    // SAFETY: checked non-null above.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    if uid == 0 {
        return Err(format!(
            "--code-server-user {name} is root; code servers run user code and must not"
        ));
    }
    Ok((uid, gid))
}

/// Creates `dir` (mode `mode`) or checks that the existing one is a directory of ours, not a
/// link someone else planted (the run folder may be under /tmp).
fn private_owned_dir(dir: &Path, mode: u32, user: Option<(u32, u32)>) -> io::Result<()> {
    match fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = fs::symlink_metadata(dir)?;
            // SAFETY: geteuid has no failure mode.
            let me = unsafe { libc::geteuid() };
            let ours = [Some(me), Some(0), user.map(|u| u.0)].contains(&Some(meta.uid()));
            if !meta.is_dir() || !ours {
                return Err(io::Error::other(format!(
                    "{} exists and is not a folder of this user",
                    dir.display()
                )));
            }
        }
        Err(e) => return Err(e),
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
}

/// Hands `path` to the code-server user (when there is one).
fn give(path: &Path, user: Option<(u32, u32)>) -> io::Result<()> {
    match user {
        Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid)),
        None => Ok(()),
    }
}

/// The last `lines` lines of a file (reading at most its last 64 KiB).
fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut bytes = Vec::new();
    let _ = f.take(64 * 1024).read_to_end(&mut bytes);
    // The cut may split a character: lossy, not nothing.
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Without terminal colour sequences (`ESC [ ... m`), which Dagster's log lines carry.
pub(super) fn strip_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_known_by_pid_and_start_time() {
        let me = i32::try_from(std::process::id()).expect("pid");
        let t = start_time(me).expect("own start time");
        assert_eq!(start_time(me), Some(t));
        assert_eq!(start_time(i32::MAX), None);
    }

    #[test]
    fn code_servers_starting_at_once_share_one_intact_copy_of_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let runner =
            std::sync::Arc::new(Runner::new(dir.path().join("run"), None).expect("runner"));
        let stored = dir.path().join("0123abcd-deps.pex");
        let content: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&stored, &content).expect("write");
        let copies: Vec<_> = (0..8)
            .map(|_| {
                let (runner, stored) = (runner.clone(), stored.clone());
                std::thread::spawn(move || runner.shared_file(&stored))
            })
            .collect();
        for copy in copies {
            let path = copy.join().expect("thread").expect("copied");
            assert_eq!(fs::read(&path).expect("read"), content);
        }
        let names: Vec<_> = fs::read_dir(dir.path().join("run/files"))
            .expect("files")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["0123abcd-deps.pex"], "no temporary file is left");
    }

    #[test]
    fn a_code_servers_log_is_kept_where_its_code_cannot_plant_a_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let runner = Runner::new(dir.path().join("run"), None).expect("runner");
        let python = std::env::split_paths(&std::env::var_os("PATH").expect("PATH"))
            .find_map(|d| {
                (3..=14)
                    .map(|minor| format!("3.{minor}"))
                    .find(|v| d.join(format!("python{v}")).is_file())
            })
            .expect("a python3.X on PATH");
        let files = dir.path().join("stored");
        fs::create_dir(&files).expect("mkdir");
        fs::write(files.join("deps.pex"), "").expect("deps");
        fs::write(files.join("source.pex"), "").expect("source");
        let spec = Spec {
            deployment: "prod".into(),
            location: "app".into(),
            revision: 1,
            runtime: super::super::spec::Runtime::Pex {
                python_version: python.clone(),
                deps: files.join("deps.pex"),
                source: files.join("source.pex"),
            },
            env: Vec::new(),
            key: "0123456789abcdef0123".into(),
        };
        let mut first = runner
            .start(
                &spec,
                &python,
                &files.join("deps.pex"),
                &files.join("source.pex"),
                1,
            )
            .expect("started");
        let second = runner
            .start(
                &spec,
                &python,
                &files.join("deps.pex"),
                &files.join("source.pex"),
                1,
            )
            .expect("started again");
        // Its folder is the code server's; its log is not in it.
        assert!(!first.log.starts_with(&first.dir), "{first:?}");
        assert_eq!(
            first.log.parent(),
            Some(dir.path().join("run/logs").as_path())
        );
        assert_ne!(
            first.dir, second.dir,
            "two starts of one key share no files"
        );
        while first.exited().is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let (second_dir, second_log) = (second.dir.clone(), second.log.clone());
        first.stop();
        assert!(
            second_dir.is_dir() && second_log.is_file(),
            "stopping one removed the other's files"
        );
        second.stop();
        assert!(!second_dir.exists() && !second_log.exists());
    }

    #[test]
    fn the_log_tail_is_the_last_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("log");
        fs::write(
            &f,
            (1..=50).map(|i| format!("line {i}\n")).collect::<String>(),
        )
        .expect("write");
        let t = tail(&f, 3);
        assert_eq!(t, "line 48\nline 49\nline 50");
        assert_eq!(
            strip_colours("\u{1b}[32m2026\u{1b}[0m - INFO"),
            "2026 - INFO"
        );
    }
}
