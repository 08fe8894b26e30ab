//! Local path references in a pip requirements file.

use std::collections::BTreeSet;

use super::plain_file_within;
use super::pyproject::direct_reference;
use super::reference::{file_url_path, repo_path};
use crate::changes::folders::RawRef;
use crate::changes::paths::parent;
use crate::changes::{ChangesError, FileSource};

/// Appends the references the requirements `file` (repo-relative) makes, as written,
/// following `-r` includes (each file once; `seen` guards include loops). `contained` is
/// cleared when a file read is not a plain file inside `folder` (then the references depend on
/// more than the folder's content).
pub(super) fn raw_references(
    src: &dyn FileSource,
    folder: &str,
    file: &str,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<RawRef>,
    contained: &mut bool,
) -> Result<(), ChangesError> {
    if !seen.insert(file.to_string()) {
        return Ok(());
    }
    let Some(bytes) = src.read(file) else {
        return Ok(());
    };
    *contained &= plain_file_within(src, file, folder);
    let text = String::from_utf8_lossy(&bytes);
    let raw = |text: String, package: bool| RawRef {
        file: file.to_string(),
        text,
        package,
    };
    for line in logical_lines(&text) {
        let line = strip_comment(&line).trim().to_string();
        if line.is_empty() {
            continue;
        }
        let Some((opt, arg)) = option(&line) else {
            if let Some(path) = requirement_path(&line) {
                out.push(raw(path, true));
            }
            continue;
        };
        match opt {
            "-e" | "--editable" => {
                if let Some(path) = requirement_path(arg) {
                    out.push(raw(path, true));
                }
            }
            "-r" | "--requirement" | "-c" | "--constraint" if !is_url(arg) => {
                out.push(raw(arg.to_string(), false));
                // A path that cannot be followed is reported when the reference is resolved.
                if matches!(opt, "-r" | "--requirement")
                    && let Ok(Some(included)) = repo_path(src, parent(file), arg, file)
                {
                    raw_references(src, folder, &included.path, seen, out, contained)?;
                }
            }
            "-f" | "--find-links" if !is_url(arg) || arg.starts_with("file:") => {
                out.push(raw(
                    file_url_path(arg).unwrap_or_else(|| arg.to_string()),
                    false,
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Lines with `\` continuations joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        match line.strip_suffix('\\') {
            Some(start) => current.push_str(start),
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// pip: `#` starts a comment at the line start or after whitespace.
fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    match line.find(" #").or_else(|| line.find("\t#")) {
        Some(i) => &line[..i],
        None => line,
    }
}

/// An option line: `-e ./lib`, `-e./lib`, `--editable=./lib`, `--editable ./lib`.
fn option(line: &str) -> Option<(&str, &str)> {
    if !line.starts_with('-') {
        return None;
    }
    if line.starts_with("--") {
        let end = line.find(['=', ' ', '\t']).unwrap_or(line.len());
        let arg = line[end..].trim_start_matches(['=', ' ', '\t']);
        return Some((&line[..end], arg.trim()));
    }
    let opt = line.get(..2)?;
    Some((opt, line[2..].trim_start_matches('=').trim()))
}

/// The local path a requirement names, if it names one: `./lib`, `../lib`, `/abs/lib`,
/// `lib/sub`, `file:../lib`, `name @ file:../lib`. Package names and remote URLs give `None`.
fn requirement_path(req: &str) -> Option<String> {
    // Per-requirement options (`--hash=...`) and markers (` ; python_version...`) follow.
    let req = req.split(" --").next().unwrap_or(req);
    let req = req.split(" ;").next().unwrap_or(req).trim();
    if let Some(url) = direct_reference(req) {
        return file_url_path(url);
    }
    if let Some(path) = file_url_path(req) {
        return Some(path);
    }
    if is_url(req) {
        return None;
    }
    let looks_like_path = req.starts_with('.') || req.contains('/') || req.contains('\\');
    // `./lib#egg=lib`: the fragment only names the package.
    looks_like_path.then(|| req.split('#').next().unwrap_or(req).trim().to_string())
}

fn is_url(s: &str) -> bool {
    s.contains("://") || s.starts_with("file:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_in_all_spellings() {
        assert_eq!(option("-e ./lib"), Some(("-e", "./lib")));
        assert_eq!(option("-e./lib"), Some(("-e", "./lib")));
        assert_eq!(option("--editable=../lib"), Some(("--editable", "../lib")));
        assert_eq!(
            option("--requirement  base.txt"),
            Some(("--requirement", "base.txt"))
        );
        assert_eq!(option("requests"), None);
    }

    #[test]
    fn requirement_paths_and_non_paths() {
        assert_eq!(requirement_path("./lib").as_deref(), Some("./lib"));
        assert_eq!(
            requirement_path("../lib ; python_version>'3'").as_deref(),
            Some("../lib")
        );
        assert_eq!(
            requirement_path("file:../lib#egg=lib").as_deref(),
            Some("../lib")
        );
        assert_eq!(
            requirement_path("lib @ file:../lib").as_deref(),
            Some("../lib")
        );
        assert_eq!(requirement_path("requests>=2 --hash=sha256:00"), None);
        assert_eq!(requirement_path("lib @ https://example.com/lib.whl"), None);
        assert_eq!(requirement_path("git+https://example.com/x.git"), None);
    }

    #[test]
    fn comments_and_continuations() {
        assert_eq!(strip_comment("./lib # local"), "./lib");
        assert_eq!(strip_comment("# all comment"), "");
        assert_eq!(logical_lines("-e \\\n./lib\nx\n"), vec!["-e ./lib", "x"]);
    }
}
