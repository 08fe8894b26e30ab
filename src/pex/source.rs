//! The source archive, built by dagster-deploy itself: a real PEX file in milliseconds, with
//! the layout the reference's source PEX has:
//! - the importable packages of the location's project and of each local package at the
//!   archive root, as `pip install --no-deps --target` would lay them out (the top-level
//!   packages named in `[tool.setuptools] packages`, else found as setuptools finds them:
//!   `src/` layout, else top-level folders with `__init__.py`);
//! - the whole location folder under `working_directory/root/` (package `working_directory`).
//!
//! The PEX runtime (`__main__.py`, `.bootstrap/`, `__pex__/`) is copied byte for byte from a
//! template the `pex` tool builds once per pex executable and Python version (cached), and
//! `PEX-INFO` is the template's with this content's hashes: the runtime uses `pex_hash` to
//! name its unpacked copy, so it must change with the content, and the file is named
//! `source-<pex_hash>.pex`: the same code gives the same name, which the server then has.
//!
//! Files are skipped by the reference's patterns (`.git`, `__pycache__`, `*.pyc`, `.venv`,
//! ...) and by the git repository's ignore rules (`.gitignore`); a large file that is still
//! included gets a warning naming it.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::tools::Tools;
use super::zip::{Archive, Writer};
use super::{PexError, PexReporter, platform};
use crate::protocol::hex;

/// Skipped anywhere in the tree (as the reference's source build skips them).
const IGNORED_NAMES: [&str; 8] = [
    ".git",
    "__pycache__",
    ".pytest_cache",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".cache",
    ".venv",
];
/// Folders setuptools' flat-layout discovery never takes as packages.
const NOT_PACKAGES: [&str; 9] = [
    "tests",
    "test",
    "docs",
    "doc",
    "examples",
    "build",
    "dist",
    "scripts",
    "benchmarks",
];
/// The marker file of the template, left out of every real archive.
const TEMPLATE_MARKER: &str = "__dagster_deploy_template__.py";
/// Included files at least this large get a warning [env: DAGSTER_DEPLOY_LARGE_FILE_BYTES].
const LARGE_FILE: u64 = 100 * 1024 * 1024;

/// A built source archive.
#[derive(Debug, Clone)]
pub struct Built {
    pub path: PathBuf,
    pub name: String,
    pub files: usize,
    pub bytes: u64,
}

/// The template for `python_version`, built with `pex` on first use.
pub fn template(tools: &Tools, python_version: &str) -> Result<PathBuf, PexError> {
    let (_, minor) =
        platform::parse_version(python_version).map_err(|message| PexError::Input {
            message,
            hint: "pass a supported --python-version".into(),
        })?;
    // Keyed by the pex executable (path and modification time): a new pex, a new template.
    let stamp = std::fs::metadata(&tools.pex)
        .and_then(|m| m.modified())
        .map(|t| format!("{t:?}"))
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(format!(
        "{}\n{stamp}\n{python_version}",
        tools.pex.display()
    ));
    let key = &hex(&h.finalize())[..16];
    let cache = super::deps::cache_dir();
    let path = cache.join(format!("source-template-{python_version}-{key}.pex"));
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(&cache).map_err(|e| PexError::io(&cache, e))?;
    let work = tempfile::Builder::new()
        .prefix("template-")
        .tempdir_in(&cache)
        .map_err(|e| PexError::io(&cache, e))?;
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).map_err(|e| PexError::io(&src, e))?;
    std::fs::write(src.join(TEMPLATE_MARKER), "").map_err(|e| PexError::io(&src, e))?;
    let out_file = work.path().join("template.pex");
    let out = tools
        .pex_for_target(work.path(), python_version, minor)?
        .arg("-D")
        .arg(&src)
        .arg("-o")
        .arg(&out_file)
        .output()
        .map_err(|e| PexError::io(&tools.pex, e))?;
    if !out.status.success() {
        return Err(PexError::DepsBuild {
            locations: "(source archive template)".into(),
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    std::fs::rename(&out_file, &path).map_err(|e| PexError::io(&path, e))?;
    Ok(path)
}

/// Builds the source archive of the location in `dir` with its `local_packages` into
/// `out_dir`; large files are reported as warnings about `location`.
pub fn build(
    template: &Path,
    dir: &Path,
    local_packages: &[PathBuf],
    out_dir: &Path,
    reporter: &dyn PexReporter,
    location: &str,
) -> Result<Built, PexError> {
    // Absolute, so paths compare with the repository's work tree for its ignore rules.
    let dir = &dir.canonicalize().map_err(|e| PexError::io(dir, e))?;
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let ignore = Ignore::new(dir);
    let large = std::env::var("DAGSTER_DEPLOY_LARGE_FILE_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(LARGE_FILE);
    for project in std::iter::once(dir.as_path()).chain(local_packages.iter().map(PathBuf::as_path))
    {
        for (src, prefix) in packages(project)? {
            if src.is_dir() {
                walk(&src, &prefix, &ignore, &mut files)?;
            } else {
                files.push((prefix, src));
            }
        }
    }
    walk(dir, "working_directory/root", &ignore, &mut files)?;
    files.sort();
    files.dedup_by(|a, b| a.0 == b.0);

    let mut tpl = Archive::open(template).map_err(|e| PexError::io(template, e))?;
    let info_bytes = tpl
        .read("PEX-INFO")
        .map_err(|e| PexError::io(template, e))?
        .ok_or_else(|| PexError::io(template, std::io::Error::other("no PEX-INFO")))?;
    let mut info: Value = serde_json::from_slice(&info_bytes)
        .map_err(|e| PexError::io(template, std::io::Error::other(e.to_string())))?;
    let shebang = {
        let mut f = std::fs::read(template).map_err(|e| PexError::io(template, e))?;
        let end = if f.starts_with(b"#!") {
            f.iter()
                .position(|&b| b == b'\n')
                .map(|i| i + 1)
                .unwrap_or(0)
        } else {
            0
        };
        f.truncate(end);
        f
    };

    std::fs::create_dir_all(out_dir).map_err(|e| PexError::io(out_dir, e))?;
    let tmp = out_dir.join(format!("source-tmp-{}.pex", std::process::id()));
    let mut w = Writer::create(&tmp, &shebang).map_err(|e| PexError::io(&tmp, e))?;
    let zip_err = |e: std::io::Error| PexError::Input {
        message: format!("cannot write the source archive of {}: {e}", dir.display()),
        hint: "free some disk space, or leave large files out with .gitignore".into(),
    };
    let mut code = Sha256::new();
    let mut bytes = 0u64;
    w.file(
        "working_directory/__init__.py",
        b"# The location's folder, as deployed, is in root/.\n",
        0o644,
    )
    .map_err(zip_err)?;
    for (name, path) in &files {
        let meta = std::fs::metadata(path).map_err(|e| PexError::io(path, e))?;
        if meta.len() >= large {
            reporter.warn(
                location,
                &format!(
                    "{} ({}) goes into the source archive; if it is data, leave it out with \
                 .gitignore and load it at run time",
                    path.display(),
                    human_size(meta.len())
                ),
            );
        }
        let data = std::fs::read(path).map_err(|e| PexError::io(path, e))?;
        code.update(name.as_bytes());
        code.update([0]);
        code.update((data.len() as u64).to_le_bytes());
        code.update(&data);
        bytes += data.len() as u64;
        w.file(name, &data, mode(&meta)).map_err(zip_err)?;
    }
    let code_hash = hex(&code.finalize())[..40].to_string();
    let mut whole = Sha256::new();
    whole.update(code_hash.as_bytes());
    whole.update(info["bootstrap_hash"].as_str().unwrap_or_default());
    whole.update(&shebang);
    let pex_hash = hex(&whole.finalize())[..40].to_string();
    // The runtime names its unpacked copy after pex_hash, which the template also spells out
    // in its two entry points: those get this archive's hash, the rest is copied raw.
    let template_hash = info["pex_hash"].as_str().unwrap_or_default().to_string();
    for e in tpl.entries.clone() {
        if e.name == "PEX-INFO" || e.name == TEMPLATE_MARKER {
            continue;
        }
        if (e.name == "__main__.py" || e.name == "__pex__/__init__.py") && !template_hash.is_empty()
        {
            let text = tpl
                .read(&e.name)
                .map_err(|e| PexError::io(template, e))?
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&text).replace(&template_hash, &pex_hash);
            w.file(&e.name, text.as_bytes(), 0o644).map_err(zip_err)?;
            continue;
        }
        w.copy(&mut tpl, &e).map_err(zip_err)?;
    }
    info["code_hash"] = Value::String(code_hash);
    info["pex_hash"] = Value::String(pex_hash.clone());
    let info_text = serde_json::to_vec(&info).unwrap_or_default();
    w.file("PEX-INFO", &info_text, 0o644).map_err(zip_err)?;
    w.finish().map_err(zip_err)?;
    let name = format!("source-{pex_hash}.pex");
    let path = out_dir.join(&name);
    std::fs::rename(&tmp, &path).map_err(|e| PexError::io(&path, e))?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
    Ok(Built {
        path,
        name,
        files: files.len(),
        bytes,
    })
}

fn mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o777
}

pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The git repository's ignore rules around a folder, if it is in one.
struct Ignore {
    repo: Option<git2::Repository>,
}

impl Ignore {
    fn new(dir: &Path) -> Ignore {
        Ignore {
            repo: git2::Repository::discover(dir).ok(),
        }
    }

    fn skip(&self, path: &Path, name: &str) -> bool {
        if IGNORED_NAMES.contains(&name) || name.ends_with(".pyc") {
            return true;
        }
        let Some(repo) = &self.repo else {
            return false;
        };
        let Some(workdir) = repo.workdir() else {
            return false;
        };
        let workdir = workdir
            .canonicalize()
            .unwrap_or_else(|_| workdir.to_path_buf());
        match path.strip_prefix(&workdir) {
            Ok(rel) => repo.is_path_ignored(rel).unwrap_or(false),
            Err(_) => false,
        }
    }
}

/// Every file under `dir` (symlinks to files followed, to folders not), as
/// (`prefix/relative path`, path).
fn walk(
    dir: &Path,
    prefix: &str,
    ignore: &Ignore,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), PexError> {
    let entries = std::fs::read_dir(dir).map_err(|e| PexError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| PexError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if ignore.skip(&path, &name) {
            continue;
        }
        let kind = entry.file_type().map_err(|e| PexError::io(&path, e))?;
        let zip_name = format!("{prefix}/{name}");
        if kind.is_dir() {
            walk(&path, &zip_name, ignore, out)?;
        } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
            out.push((zip_name, path));
        }
    }
    Ok(())
}

/// The importable top-level packages and modules of the project in `dir`, as (path, name in
/// the archive). A folder with only requirements.txt is not installed: none.
fn packages(dir: &Path) -> Result<Vec<(PathBuf, String)>, PexError> {
    let pyproject = dir.join("pyproject.toml");
    let installable = pyproject.is_file() || dir.join("setup.py").is_file();
    if !installable {
        return Ok(Vec::new());
    }
    let mut root = dir.to_path_buf();
    if pyproject.is_file() {
        let text = std::fs::read_to_string(&pyproject).map_err(|e| PexError::io(&pyproject, e))?;
        let doc: toml::Table = toml::from_str(&text).map_err(|e| PexError::Input {
            message: format!("{} is not valid TOML: {e}", pyproject.display()),
            hint: "fix the file".into(),
        })?;
        let st = doc
            .get("tool")
            .and_then(|t| t.get("setuptools"))
            .and_then(|s| s.as_table());
        if let Some(base) = st
            .and_then(|s| s.get("package-dir"))
            .and_then(|p| p.get(""))
            .and_then(|p| p.as_str())
        {
            root = dir.join(base);
        }
        let listed = |key: &str| -> Option<Vec<String>> {
            st.and_then(|s| s.get(key))?.as_array().map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
        };
        let pkgs = listed("packages");
        let mods = listed("py-modules");
        if pkgs.is_some() || mods.is_some() {
            let mut out = Vec::new();
            let mut tops: Vec<String> = pkgs
                .unwrap_or_default()
                .iter()
                .map(|p| p.split('.').next().unwrap_or(p).to_string())
                .collect();
            tops.sort();
            tops.dedup();
            for t in tops {
                out.push((root.join(&t), t));
            }
            for m in mods.unwrap_or_default() {
                out.push((root.join(format!("{m}.py")), format!("{m}.py")));
            }
            return Ok(out);
        }
    }
    if root == dir && dir.join("src").is_dir() {
        root = dir.join("src");
    }
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&root).map_err(|e| PexError::io(&root, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let importable = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if path.is_dir()
            && importable
            && !NOT_PACKAGES.contains(&name.as_str())
            && path.join("__init__.py").is_file()
        {
            out.push((path, name));
        }
    }
    out.sort();
    Ok(out)
}
