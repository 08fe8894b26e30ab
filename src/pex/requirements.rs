//! What a location needs from PyPI, and which local folders go into its source archive.
//!
//! Read from `requirements.txt` (continuations joined, comments dropped, `-r` includes inlined),
//! `pyproject.toml` (`[project].dependencies` and every optional group, poetry dependencies,
//! `[tool.uv.sources]` paths and workspace members) and `setup.py` (its `install_requires`,
//! read by running `setup.py egg_info` with the target Python, as pip would). A requirement that
//! is a local path (`./x`, `../x`, `/x`, `-e PATH`, a uv path source) is a local package: it
//! goes into the source archive, and its own requirements are read the same way.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::PexError;

/// Pinned below the release whose generated code the protobuf that dagster allows rejects
/// (the code server would crash on import); hash-pinned sets are left alone, since pip's
/// hash mode refuses unhashed lines and such sets are locked anyway.
const EXTRA_CONSTRAINTS: [&str; 1] = ["grpcio-health-checking<1.82"];

/// The files that make a folder a Python project.
pub const PROJECT_FILES: [&str; 3] = ["requirements.txt", "pyproject.toml", "setup.py"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirements {
    /// Normalised requirement lines, sorted and unique.
    pub lines: BTreeSet<String>,
    /// Local packages (absolute), in the order found.
    pub local_packages: Vec<PathBuf>,
}

impl Requirements {
    /// The requirements file handed to the resolver.
    pub fn text(&self) -> String {
        self.lines.iter().map(|l| format!("{l}\n")).collect()
    }
}

/// Reads the requirements of the project in `dir` and, transitively, of its local packages.
/// `python` runs `setup.py` (asked for only when a `setup.py` is found).
pub fn collect(
    dir: &Path,
    python: &mut dyn FnMut() -> Result<PathBuf, PexError>,
) -> Result<Requirements, PexError> {
    if !PROJECT_FILES.iter().any(|f| dir.join(f).is_file()) {
        return Err(PexError::NoProject {
            dir: dir.to_path_buf(),
        });
    }
    let root = dir.canonicalize().map_err(|e| PexError::io(dir, e))?;
    let mut pending = vec![root.clone()];
    let mut seen = BTreeSet::new();
    let mut local_packages = Vec::new();
    let mut lines = BTreeSet::new();
    while let Some(folder) = pending.pop() {
        if !seen.insert(folder.clone()) {
            continue;
        }
        for item in folder_requirements(&folder, python)? {
            match item {
                Item::Line(l) => {
                    lines.insert(normalise(&l));
                }
                Item::Local(path) => {
                    let path = path.canonicalize().map_err(|e| PexError::io(&path, e))?;
                    if path != root && !local_packages.contains(&path) {
                        local_packages.push(path.clone());
                    }
                    pending.push(path);
                }
            }
        }
    }
    if !lines.iter().any(|l| l.contains("--hash")) {
        lines.extend(EXTRA_CONSTRAINTS.iter().map(|c| c.to_string()));
    }
    Ok(Requirements {
        lines,
        local_packages,
    })
}

enum Item {
    Line(String),
    Local(PathBuf),
}

fn folder_requirements(
    dir: &Path,
    python: &mut dyn FnMut() -> Result<PathBuf, PexError>,
) -> Result<Vec<Item>, PexError> {
    let mut items = Vec::new();
    let txt = dir.join("requirements.txt");
    if txt.is_file() {
        requirements_txt(&txt, &mut items, 0)?;
    }
    let setup = dir.join("setup.py");
    if setup.is_file() {
        for l in setup_py(dir, &python()?)? {
            items.push(classify(&l, dir, &setup)?);
        }
    }
    let pyproject = dir.join("pyproject.toml");
    if pyproject.is_file() {
        pyproject_toml(&pyproject, &mut items)?;
    }
    Ok(items)
}

/// A path requirement (`./x`, `../x`, `/x`, `-e PATH`, `file:PATH`) as a local package.
fn classify(line: &str, relative_to: &Path, file: &Path) -> Result<Item, PexError> {
    let target = line
        .strip_prefix("-e ")
        .or_else(|| line.strip_prefix("--editable "))
        .map(str::trim)
        .unwrap_or(line);
    let target = target.strip_prefix("file:").unwrap_or(target);
    let is_path = target.starts_with("./")
        || target.starts_with("../")
        || target.starts_with('/')
        || target == ".";
    if !is_path {
        return Ok(Item::Line(line.to_string()));
    }
    // Markers or options after the path (`../lib ; python_version > "3"`).
    let path = target
        .split([';', ' ', '\t'])
        .next()
        .unwrap_or(target)
        .trim_end_matches('/');
    let path = if path.is_empty() { "/" } else { path };
    let full = relative_to.join(path);
    if !full.is_dir() {
        return Err(PexError::Input {
            message: format!(
                "{} names the local package {line:?}, but {} is not a folder",
                file.display(),
                full.display()
            ),
            hint: "fix the path (it is relative to the file that names it)".into(),
        });
    }
    Ok(Item::Local(full))
}

fn requirements_txt(path: &Path, items: &mut Vec<Item>, depth: usize) -> Result<(), PexError> {
    if depth > 10 {
        return Err(PexError::Input {
            message: format!("{}: -r includes nest too deep (a cycle?)", path.display()),
            hint: "remove the include cycle".into(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| PexError::io(path, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut joined = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let l = raw.trim_end();
        match l.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(l);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        joined.push(current);
    }
    for raw in joined {
        let line = strip_comment(&raw).trim().to_string();
        if line.is_empty() || line == "." {
            continue;
        }
        if let Some(inc) = line
            .strip_prefix("-r ")
            .or_else(|| line.strip_prefix("--requirement "))
        {
            requirements_txt(&dir.join(inc.trim()), items, depth + 1)?;
            continue;
        }
        if let Some(c) = line
            .strip_prefix("-c ")
            .or_else(|| line.strip_prefix("--constraint "))
        {
            // The resolver reads the constraints file from its own folder: make it absolute.
            let abs = dir.join(c.trim());
            items.push(Item::Line(format!("-c {}", abs.display())));
            continue;
        }
        items.push(classify(&line, dir, path)?);
    }
    Ok(())
}

/// pip's rule: `#` at the start of a line or after whitespace starts a comment.
fn strip_comment(line: &str) -> &str {
    if line.starts_with('#') {
        return "";
    }
    let bytes = line.as_bytes();
    for i in 1..bytes.len() {
        if bytes[i] == b'#' && bytes[i - 1].is_ascii_whitespace() {
            return &line[..i];
        }
    }
    line
}

/// Lower case, runs of `-_.` as one `-`: PEP 503.
pub fn canonical_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The requirement's project name, if the line is a plain requirement.
pub fn requirement_name(line: &str) -> Option<String> {
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(line.len());
    (end > 0 && !line.starts_with('-')).then(|| canonical_name(&line[..end]))
}

/// One spelling per requirement: canonical name, no spaces in the specifier, single spaces in
/// the marker; options and URLs only trimmed.
pub fn normalise(line: &str) -> String {
    let line = line.trim();
    let Some(name) = requirement_name(line) else {
        return line.split_whitespace().collect::<Vec<_>>().join(" ");
    };
    let name_len = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(line.len());
    let rest = &line[name_len..];
    if rest.contains(" @ ") || rest.trim_start().starts_with('@') {
        return format!(
            "{name}{}",
            rest.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    let (spec, marker) = match rest.split_once(';') {
        Some((s, m)) => (s, Some(m)),
        None => (rest, None),
    };
    let spec: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
    match marker {
        Some(m) => format!(
            "{name}{spec}; {}",
            m.split_whitespace().collect::<Vec<_>>().join(" ")
        ),
        None => format!("{name}{spec}"),
    }
}

fn pyproject_toml(path: &Path, items: &mut Vec<Item>) -> Result<(), PexError> {
    let text = std::fs::read_to_string(path).map_err(|e| PexError::io(path, e))?;
    let doc: toml::Table = toml::from_str(&text).map_err(|e| PexError::Input {
        message: format!("{} is not valid TOML: {e}", path.display()),
        hint: "fix the file".into(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut lines: Vec<String> = Vec::new();
    let project = doc.get("project").and_then(|p| p.as_table());
    if let Some(p) = project {
        let strings = |v: Option<&toml::Value>| -> Vec<String> {
            v.and_then(|d| d.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        lines.extend(strings(p.get("dependencies")));
        if let Some(groups) = p.get("optional-dependencies").and_then(|g| g.as_table()) {
            for g in groups.values() {
                lines.extend(strings(Some(g)));
            }
        }
    }
    let tool = doc.get("tool").and_then(|t| t.as_table());
    if let Some(poetry) = tool
        .and_then(|t| t.get("poetry"))
        .and_then(|p| p.as_table())
    {
        for key in ["dependencies", "dev-dependencies"] {
            let Some(deps) = poetry.get(key).and_then(|d| d.as_table()) else {
                continue;
            };
            for (name, spec) in deps {
                if name == "python" {
                    continue;
                }
                match spec {
                    toml::Value::String(s) => lines.push(poetry_line(name, s)),
                    toml::Value::Table(t) => match (t.get("path"), t.get("version")) {
                        (Some(p), _) if p.as_str().is_some() => {
                            let p = p.as_str().unwrap_or_default();
                            items.push(classify(&local_spelling(p), dir, path)?);
                        }
                        (_, Some(v)) => lines.push(poetry_line(name, v.as_str().unwrap_or(""))),
                        _ => lines.push(name.clone()),
                    },
                    _ => lines.push(name.clone()),
                }
            }
        }
    }
    let sources = tool
        .and_then(|t| t.get("uv"))
        .and_then(|u| u.get("sources"))
        .and_then(|s| s.as_table());
    for line in lines {
        let source = requirement_name(&line).and_then(|n| {
            sources.and_then(|s| {
                s.iter()
                    .find(|(k, v)| canonical_name(k) == n && v.get("group").is_none())
                    .map(|(_, v)| v)
            })
        });
        match source {
            Some(src) if src.get("path").and_then(|p| p.as_str()).is_some() => {
                let p = src.get("path").and_then(|p| p.as_str()).unwrap_or_default();
                items.push(classify(&local_spelling(p), dir, path)?);
            }
            Some(src) if src.get("workspace").and_then(|w| w.as_bool()) == Some(true) => {
                let name = requirement_name(&line).unwrap_or_default();
                match workspace_member(dir, &name) {
                    Some(member) => items.push(Item::Local(member)),
                    None => items.push(Item::Line(line)),
                }
            }
            _ => items.push(classify(&line, dir, path)?),
        }
    }
    Ok(())
}

/// A relative path as a path requirement (`lib` → `./lib`).
fn local_spelling(p: &str) -> String {
    if p.starts_with('/') || p.starts_with("./") || p.starts_with("../") {
        p.to_string()
    } else {
        format!("./{p}")
    }
}

fn poetry_line(name: &str, spec: &str) -> String {
    let spec = spec.trim();
    if spec == "*" || spec.is_empty() {
        return name.to_string();
    }
    // Poetry's caret and tilde have no pip spelling; keep the lower bound.
    if let Some(v) = spec.strip_prefix('^').or_else(|| spec.strip_prefix('~')) {
        return format!("{name}>={}", v.trim_start_matches('='));
    }
    if spec.starts_with(|c: char| c.is_ascii_digit()) {
        return format!("{name}=={spec}");
    }
    format!("{name}{spec}")
}

/// The member folder `<workspace root>/<name>` of the nearest uv workspace above `dir`.
fn workspace_member(dir: &Path, name: &str) -> Option<PathBuf> {
    let mut cur = Some(dir);
    while let Some(d) = cur {
        let py = d.join("pyproject.toml");
        if let Ok(text) = std::fs::read_to_string(&py)
            && let Ok(doc) = toml::from_str::<toml::Table>(&text)
            && doc
                .get("tool")
                .and_then(|t| t.get("uv"))
                .and_then(|u| u.get("workspace"))
                .is_some()
        {
            let member = d.join(name);
            return member.is_dir().then_some(member);
        }
        cur = d.parent();
    }
    None
}

/// `install_requires` of a `setup.py`, as pip sees them (markers included, extras left out).
const SETUP_PY_SCRIPT: &str = r#"
import json, subprocess, sys, tempfile, importlib.metadata as md
with tempfile.TemporaryDirectory() as tmp:
    p = subprocess.run([sys.executable, "setup.py", "egg_info", "--egg-base", tmp],
                       capture_output=True, text=True)
    if p.returncode:
        sys.stderr.write(p.stdout + p.stderr)
        sys.exit(3)
    dists = list(md.distributions(path=[tmp]))
    if len(dists) != 1:
        sys.stderr.write("setup.py egg_info made %d distributions" % len(dists))
        sys.exit(3)
    reqs = [r for r in (dists[0].requires or []) if "extra ==" not in r]
    print(json.dumps(reqs))
"#;

fn setup_py(dir: &Path, python: &Path) -> Result<Vec<String>, PexError> {
    let out = Command::new(python)
        .arg("-c")
        .arg(SETUP_PY_SCRIPT)
        .current_dir(dir)
        .output()
        .map_err(|e| PexError::io(python, e))?;
    let setup = dir.join("setup.py");
    if !out.status.success() {
        return Err(PexError::Input {
            message: format!(
                "cannot read the requirements of {} (`{} setup.py egg_info` failed):\n{}",
                setup.display(),
                python.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            hint: "fix setup.py, or list the requirements in requirements.txt or \
                   pyproject.toml instead"
                .into(),
        });
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| PexError::Input {
        message: format!("unexpected answer reading {}: {e}", setup.display()),
        hint: "list the requirements in requirements.txt instead".into(),
    })?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_python() -> Result<PathBuf, PexError> {
        panic!("no setup.py here")
    }

    #[test]
    fn normalising_gives_one_spelling() {
        assert_eq!(
            normalise("Dagster_Cloud >= 1.0 , <2"),
            "dagster-cloud>=1.0,<2"
        );
        assert_eq!(
            normalise("pandas ;  python_version   < '3.12'"),
            "pandas; python_version < '3.12'"
        );
        assert_eq!(
            normalise("--extra-index-url   https://x/simple"),
            "--extra-index-url https://x/simple"
        );
        assert_eq!(
            requirement_name("zope.interface[x]>=1"),
            Some("zope-interface".into())
        );
        assert_eq!(requirement_name("-e ../x"), None);
    }

    #[test]
    fn reads_every_source_and_follows_local_packages() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let w = |p: &str, s: &str| {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, s).unwrap();
        };
        w(
            "app/requirements.txt",
            "# comment\ndagster \\\n  >=1.8  # inline\n-e ../libs/common\n-r more.txt\n.\n",
        );
        w("app/more.txt", "requests\n");
        w(
            "app/pyproject.toml",
            "[project]\nname='app'\ndependencies=['Pandas', 'shared']\n\
             [project.optional-dependencies]\ntest=['pytest']\n\
             [tool.uv.sources]\nshared={path='../libs/shared'}\n",
        );
        w(
            "libs/common/pyproject.toml",
            "[project]\nname='common'\ndependencies=['pyyaml']\n",
        );
        w("libs/shared/requirements.txt", "../common\nnumpy\n");
        let r = collect(&root.join("app"), &mut no_python).unwrap();
        let lines: Vec<_> = r.lines.iter().cloned().collect();
        assert_eq!(
            lines,
            [
                "dagster>=1.8",
                "grpcio-health-checking<1.82",
                "numpy",
                "pandas",
                "pytest",
                "pyyaml",
                "requests"
            ]
        );
        let names: Vec<_> = r
            .local_packages
            .iter()
            .map(|p| {
                p.strip_prefix(root.canonicalize().unwrap())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(names, ["libs/common", "libs/shared"]);
    }

    #[test]
    fn a_folder_without_project_files_or_with_a_bad_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = collect(dir.path(), &mut no_python).unwrap_err();
        assert!(e.to_string().contains("requirements.txt"), "{e}");
        std::fs::write(dir.path().join("requirements.txt"), "../nowhere\n").unwrap();
        let e = collect(dir.path(), &mut no_python).unwrap_err();
        assert!(e.to_string().contains("is not a folder"), "{e}");
    }
}
