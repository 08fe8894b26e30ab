//! The dependencies archive: every PyPI requirement of a location, resolved by `uv` into a
//! PEP 751 lock for the target platform, then built by `pex --pylock` into `deps-<key>.pex`.
//!
//! The key is a hash of the normalised requirement set, the Python version and the platform,
//! so locations with the same requirements share one archive, and an archive is rebuilt (or
//! uploaded) only when that set changes. Built archives are kept in the local cache
//! (`~/.cache/dagster-deploy/pex/`) too: a second server, or a lost upload, needs no rebuild.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::requirements::Requirements;
use super::tools::Tools;
use super::{PexError, platform};

/// Bumped when the way archives are built changes, so old keys are not reused.
const BUILD_FORMAT: &str = "dagster-deploy deps v1";

/// The dependency key (40 hex digits).
pub fn key(req: &Requirements, python_version: &str) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "{BUILD_FORMAT}\n{}\npython {python_version}\n",
        platform::PLATFORM_ID
    ));
    h.update(req.text());
    crate::protocol::hex(&h.finalize())[..40].to_string()
}

pub fn file_name(key: &str) -> String {
    format!("deps-{key}.pex")
}

/// Where built archives are kept between runs.
pub fn cache_dir() -> PathBuf {
    super::tools::cache_root().join("pex")
}

/// A built archive and the Dagster version in it.
#[derive(Debug, Clone)]
pub struct Built {
    pub path: PathBuf,
    pub dagster_version: String,
}

/// The cached archive for `key`, if one was built before.
pub fn cached(key: &str) -> Option<Built> {
    let path = cache_dir().join(file_name(key));
    let version = std::fs::read_to_string(cache_dir().join(format!("deps-{key}.dagster-version")))
        .ok()?
        .trim()
        .to_string();
    path.is_file().then_some(Built {
        path,
        dagster_version: version,
    })
}

/// Resolves and builds the archive for `req` (named by `key`) into the cache.
pub fn build(
    req: &Requirements,
    python_version: &str,
    key: &str,
    tools: &Tools,
    locations: &str,
) -> Result<Built, PexError> {
    let (_, minor) =
        platform::parse_version(python_version).map_err(|message| PexError::Input {
            message,
            hint: "pass a supported --python-version".into(),
        })?;
    let cache = cache_dir();
    std::fs::create_dir_all(&cache).map_err(|e| PexError::io(&cache, e))?;
    let work = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(&cache)
        .map_err(|e| PexError::io(&cache, e))?;
    let w = work.path();
    let write = |name: &str, text: &str| -> Result<PathBuf, PexError> {
        let p = w.join(name);
        std::fs::write(&p, text).map_err(|e| PexError::io(&p, e))?;
        Ok(p)
    };
    let input = write("requirements.in", &req.text())?;
    let lock = w.join("pylock.toml");
    let out = Command::new(&tools.uv)
        .args([
            "pip",
            "compile",
            "--quiet",
            "--no-header",
            "--format",
            "pylock.toml",
        ])
        .args(["--python-version", python_version])
        .args(["--python-platform", platform::UV_PLATFORM])
        .arg("-o")
        .arg(&lock)
        .arg(&input)
        .current_dir(w)
        .output()
        .map_err(|e| PexError::io(&tools.uv, e))?;
    if !out.status.success() {
        return Err(PexError::Resolve {
            locations: locations.to_string(),
            requirements: req.text(),
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let dagster_version = locked_version(&lock, "dagster")?.ok_or_else(|| PexError::NoDagster {
        locations: locations.to_string(),
    })?;
    let tmp_pex = w.join("deps.pex");
    let out = tools
        .pex_for_target(w, python_version, minor)?
        .arg("--pylock")
        .arg(&lock)
        .arg("-o")
        .arg(&tmp_pex)
        .current_dir(w)
        .output()
        .map_err(|e| PexError::io(&tools.pex, e))?;
    if !out.status.success() {
        return Err(PexError::DepsBuild {
            locations: locations.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .trim()
            .to_string(),
        });
    }
    let path = cache.join(file_name(key));
    std::fs::rename(&tmp_pex, &path).map_err(|e| PexError::io(&path, e))?;
    let version_file = cache.join(format!("deps-{key}.dagster-version"));
    std::fs::write(&version_file, &dagster_version).map_err(|e| PexError::io(&version_file, e))?;
    Ok(Built {
        path,
        dagster_version,
    })
}

/// The version of `name` in a `pylock.toml`.
fn locked_version(lock: &Path, name: &str) -> Result<Option<String>, PexError> {
    let text = std::fs::read_to_string(lock).map_err(|e| PexError::io(lock, e))?;
    let doc: toml::Table = toml::from_str(&text).map_err(|e| PexError::Input {
        message: format!("uv wrote an unreadable lock {}: {e}", lock.display()),
        hint: "upgrade uv (DAGSTER_DEPLOY_UV, or remove the tools folder to reinstall)".into(),
    })?;
    Ok(doc
        .get("packages")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
        .find(|p| p.get("name").and_then(|n| n.as_str()) == Some(name))
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .map(str::to_string))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn req(lines: &[&str]) -> Requirements {
        Requirements {
            lines: lines.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
            local_packages: Vec::new(),
        }
    }

    #[test]
    fn the_key_follows_requirements_and_python_only() {
        let a = key(&req(&["dagster", "pandas"]), "3.11");
        assert_eq!(a.len(), 40);
        assert_eq!(a, key(&req(&["pandas", "dagster"]), "3.11"));
        assert_ne!(a, key(&req(&["dagster"]), "3.11"));
        assert_ne!(a, key(&req(&["dagster", "pandas"]), "3.12"));
    }
}
