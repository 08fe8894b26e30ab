//! `dagster-webserver` and `dagster-daemon`: from PATH when both are there, else from a virtual
//! environment in the cache folder (`~/.cache/dagster-deploy/dagster/<version>/venv`), made
//! with pip from PyPI on first use, as pex and uv are (`python_tools`).

use std::path::PathBuf;

use crate::python_tools::{self, InstallError};

/// The Dagster release `serve` installs (one place: bump it here).
pub const DAGSTER_VERSION: &str = "1.13.28";

/// Where the Dagster executables are.
#[derive(Debug, Clone)]
pub struct Install {
    pub webserver: PathBuf,
    pub daemon: PathBuf,
}

impl Install {
    /// The folder holding the executables (first on the children's PATH).
    pub fn bin_dir(&self) -> PathBuf {
        self.webserver
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default()
    }
}

/// The cache's virtual environment for `DAGSTER_VERSION`.
pub fn venv() -> PathBuf {
    python_tools::cache_root()
        .join("dagster")
        .join(DAGSTER_VERSION)
        .join("venv")
}

/// Finds both executables, installing them into the cache when PATH lacks one; `say` gets the
/// message for people (the first install takes a minute).
pub fn find_or_install(say: &dyn Fn(&str)) -> Result<Install, InstallError> {
    if let (Some(webserver), Some(daemon)) = (
        python_tools::which("dagster-webserver"),
        python_tools::which("dagster-daemon"),
    ) {
        return Ok(Install { webserver, daemon });
    }
    let venv = venv();
    let bin = venv.join("bin");
    let cached = Install {
        webserver: bin.join("dagster-webserver"),
        daemon: bin.join("dagster-daemon"),
    };
    let dagster = format!("dagster=={DAGSTER_VERSION}");
    let webserver = format!("dagster-webserver=={DAGSTER_VERSION}");
    let specs = [dagster.as_str(), webserver.as_str()];
    if !python_tools::installed(&venv, &specs) {
        say(&format!(
            "Installing dagster {DAGSTER_VERSION} and dagster-webserver from PyPI into {} (first \
             use only; or put dagster-webserver and dagster-daemon on PATH)",
            venv.display()
        ));
        python_tools::pip_install(&venv, &specs)?;
    }
    Ok(cached)
}
