//! Python tools dagster-deploy installs from PyPI on first use (pex and uv for Python-executable
//! builds, dagster and dagster-webserver for `serve --dagster-ui`): the cache folder they go
//! in, finding executables on PATH, and the one installer, a virtual environment made with the
//! system's `python3` and filled by its `pip`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// An install that failed: what was run and what it said.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InstallError(pub String);

/// `$DAGSTER_DEPLOY_CACHE_DIR`, else `$XDG_CACHE_HOME/dagster-deploy`, else
/// `~/.cache/dagster-deploy`.
pub fn cache_root() -> PathBuf {
    if let Some(d) = std::env::var_os("DAGSTER_DEPLOY_CACHE_DIR") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("dagster-deploy")
}

/// The first executable called `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Records in a venv which specs were installed into it completely.
const MARKER: &str = ".dagster-deploy-installed";

/// Whether `pip_install(venv, specs)` finished (an interrupted install does not count).
pub fn installed(venv: &Path, specs: &[&str]) -> bool {
    std::fs::read_to_string(venv.join(MARKER)).is_ok_and(|s| s == specs.join("\n"))
}

/// Installs `specs` into the virtual environment `venv` (created with `python3` from PATH when
/// it has no pip yet), unless that was done already: a lock file beside `venv` keeps two
/// processes from installing into it at once, and a marker in it records a finished install.
pub fn pip_install(venv: &Path, specs: &[&str]) -> Result<(), InstallError> {
    let parent = venv.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| InstallError(format!("cannot create {}: {e}", parent.display())))?;
    let lock_path = venv.with_extension("lock");
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| InstallError(format!("cannot open {}: {e}", lock_path.display())))?;
    lock.lock()
        .map_err(|e| InstallError(format!("cannot lock {}: {e}", lock_path.display())))?;
    if installed(venv, specs) {
        return Ok(());
    }
    let python = which("python3").ok_or_else(|| {
        InstallError(format!(
            "no python3 on PATH to install {} with (install Python 3, e.g. `apt-get install \
             python3 python3-venv`)",
            specs.join(" ")
        ))
    })?;
    if !venv.join("bin/pip").exists() {
        run(
            Command::new(&python).args(["-m", "venv"]).arg(venv),
            "python3 -m venv",
        )?;
    }
    run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(specs),
        &format!("pip install {}", specs.join(" ")),
    )?;
    let marker = venv.join(MARKER);
    std::fs::write(&marker, specs.join("\n"))
        .map_err(|e| InstallError(format!("cannot write {}: {e}", marker.display())))
}

fn run(cmd: &mut Command, what: &str) -> Result<(), InstallError> {
    let out = cmd
        .output()
        .map_err(|e| InstallError(format!("{what}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(InstallError(format!(
            "{what} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}
