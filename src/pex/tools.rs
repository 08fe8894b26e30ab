//! The outside tools a build needs: `uv` (resolves requirements into a PEP 751 lock), `pex`
//! (turns the lock into a PEX file) and, only for `setup.py` projects or requirements without
//! wheels, the target Python.
//!
//! `DAGSTER_DEPLOY_PEX` / `DAGSTER_DEPLOY_UV` name the executables; else they are taken from
//! PATH (pex only if new enough for `--pylock`), else from the tools folder
//! (`DAGSTER_DEPLOY_TOOLS_DIR`, default `~/.cache/dagster-deploy/tools`), where they are
//! installed from PyPI on first use into a virtual environment, with a message saying so.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{PexError, PexReporter};
pub use crate::python_tools::cache_root;
use crate::python_tools::{is_executable, which};

/// The oldest pex that reads `--pylock` files the way the builds use them.
const MIN_PEX: (u32, u32) = (2, 60);
const PEX_SPEC: &str = "pex>=2.60,<3";
const UV_SPEC: &str = "uv>=0.8";

#[derive(Debug, Clone)]
pub struct Tools {
    pub pex: PathBuf,
    pub uv: PathBuf,
}

impl Tools {
    /// `pex` aimed at our target, Linux x86_64 CPython 3.`minor` (its complete-platform file
    /// is written into `work`), keeping the environment for subprocesses and with a shebang of
    /// that Python. Callers add the inputs and `-o`.
    pub fn pex_for_target(
        &self,
        work: &Path,
        python_version: &str,
        minor: u32,
    ) -> Result<Command, PexError> {
        let platform_file = work.join("platform.json");
        std::fs::write(
            &platform_file,
            super::platform::complete_platform(minor).to_string(),
        )
        .map_err(|e| PexError::io(&platform_file, e))?;
        let mut pex = Command::new(&self.pex);
        pex.arg("--complete-platform")
            .arg(&platform_file)
            // Subprocesses (dbt and other console scripts) must see the same environment.
            .arg("--no-strip-pex-env")
            .arg("--python-shebang")
            .arg(format!("/usr/bin/env python{python_version}"));
        Ok(pex)
    }
}

/// `$DAGSTER_DEPLOY_TOOLS_DIR`, else `~/.cache/dagster-deploy/tools`.
pub fn tools_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DAGSTER_DEPLOY_TOOLS_DIR") {
        return PathBuf::from(d);
    }
    cache_root().join("tools")
}

/// `pythonX.Y` on PATH, or an error saying how to get one.
pub fn python(version: &str, why: &str) -> Result<PathBuf, PexError> {
    let name = format!("python{version}");
    let found = which(&name).filter(|p| {
        // pyenv-style shims exist for versions that are not installed: ask the interpreter.
        Command::new(p)
            .arg("-c")
            .arg("import sys; print('%d.%d' % sys.version_info[:2])")
            .output()
            .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == version)
            .unwrap_or(false)
    });
    found.ok_or_else(|| PexError::NoPython {
        version: version.to_string(),
        why: why.to_string(),
    })
}

fn version_of(exe: &Path) -> Option<(u32, u32)> {
    let out = Command::new(exe).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.split_whitespace().last()?;
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Finds both tools, installing them into the tools folder when needed (and saying so).
pub fn find_or_install(reporter: &dyn PexReporter) -> Result<Tools, PexError> {
    let env = |n: &str| std::env::var_os(n).map(PathBuf::from);
    let venv_bin = tools_dir().join("venv/bin");
    let pex = env("DAGSTER_DEPLOY_PEX").or_else(|| {
        which("pex")
            .filter(|p| version_of(p).is_some_and(|v| v >= MIN_PEX))
            .or_else(|| Some(venv_bin.join("pex")).filter(|p| is_executable(p)))
    });
    let uv = env("DAGSTER_DEPLOY_UV")
        .or_else(|| which("uv").or_else(|| Some(venv_bin.join("uv")).filter(|p| is_executable(p))));
    if let (Some(pex), Some(uv)) = (pex.clone(), uv.clone()) {
        return Ok(Tools { pex, uv });
    }
    install(reporter)?;
    Ok(Tools {
        pex: pex.unwrap_or_else(|| venv_bin.join("pex")),
        uv: uv.unwrap_or_else(|| venv_bin.join("uv")),
    })
}

fn install(reporter: &dyn PexReporter) -> Result<(), PexError> {
    let dir = tools_dir();
    reporter.progress(&format!(
        "Installing {PEX_SPEC} and {UV_SPEC} from PyPI into {} (first use only; set \
         DAGSTER_DEPLOY_TOOLS_DIR to put them elsewhere, or put pex and uv on PATH)",
        dir.display()
    ));
    crate::python_tools::pip_install(&dir.join("venv"), &[PEX_SPEC, UV_SPEC])
        .map_err(|e| PexError::ToolInstall { message: e.0 })
}
