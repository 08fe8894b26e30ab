//! Turning a path or `file:` URL written in a project file into a repo-relative path.

use std::path::Path;

use super::super::paths::{from_bytes, join};
use super::super::{ChangesError, FileSource, Resolved, Unresolvable};

/// pdm writes paths as `file:///${PROJECT_ROOT}/../lib`: the folder of the pyproject.toml.
const PROJECT_ROOT: &str = "${PROJECT_ROOT}";

/// The local path a `file:` URL points to (`file:../lib`, `file:///abs`,
/// `file://localhost/abs`), percent-decoded, with a `#subdirectory=` fragment applied and
/// other fragments dropped. `None` for anything that is not a `file:` URL.
pub(super) fn file_url_path(url: &str) -> Option<String> {
    let rest = strip_prefix_ignore_case(url.trim(), "file:")?;
    let rest = match rest.strip_prefix("//") {
        Some(after) if after.starts_with('/') => after,
        Some(after) => match after.strip_prefix("localhost") {
            Some(abs) if abs.starts_with('/') => abs,
            // `file://${PROJECT_ROOT}/..` and the invalid but seen `file://../lib`.
            _ => after,
        },
        None => rest,
    };
    let (path, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let path = path.split_once('?').map(|(p, _)| p).unwrap_or(path);
    let mut path = percent_decode(path);
    if let Some(sub) = fragment
        .split('&')
        .find_map(|kv| kv.strip_prefix("subdirectory="))
    {
        path = format!("{}/{}", path.trim_end_matches('/'), percent_decode(sub));
    }
    Some(path)
}

/// Resolves `path` (relative to the repo folder `base_dir`, or absolute) to the repo-relative
/// path it names, symlinks followed. `file` is the project file that names it (for errors).
/// An absolute path outside the work tree names something in the image (`--find-links
/// /wheels`, `file:///opt/app/lib`): `None`, not a build input. A relative path that climbs
/// out of the repository is an error.
pub(super) fn repo_path(
    src: &dyn FileSource,
    base_dir: &str,
    path: &str,
    file: &str,
) -> Result<Option<Resolved>, ChangesError> {
    let cleaned = path.trim().replace('\\', "/");
    let cleaned = strip_extras(&cleaned);
    let project_relative = cleaned
        .strip_prefix('/')
        .unwrap_or(cleaned)
        .strip_prefix(PROJECT_ROOT);
    let joined = match project_relative {
        Some(rest) => join(base_dir, rest.trim_start_matches('/')),
        None if cleaned.starts_with('/') => {
            let inside = src
                .root()
                .and_then(|root| Path::new(cleaned).strip_prefix(root).ok());
            match inside {
                Some(rel) => from_bytes(rel.as_os_str().as_encoded_bytes()),
                None => return Ok(None),
            }
        }
        None => join(base_dir, cleaned),
    };
    match src.resolve(&joined) {
        Ok(resolved) => Ok(Some(resolved)),
        Err(Unresolvable::Outside) => Err(ChangesError::OutsideRepository {
            path: format!("{path} (in {file})"),
        }),
        Err(Unresolvable::Loop) => Err(ChangesError::SymlinkLoop {
            path: format!("{path} (in {file})"),
        }),
    }
}

/// `./lib[extra1,extra2]` names the folder `./lib`.
fn strip_extras(path: &str) -> &str {
    match path
        .strip_suffix(']')
        .and_then(|p| p.rfind('[').map(|i| &path[..i]))
    {
        Some(p) => p.trim_end(),
        None => path,
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_in_their_usual_spellings() {
        assert_eq!(file_url_path("file:../lib").as_deref(), Some("../lib"));
        assert_eq!(
            file_url_path("file:///abs/lib").as_deref(),
            Some("/abs/lib")
        );
        assert_eq!(
            file_url_path("FILE://localhost/abs/my%20lib").as_deref(),
            Some("/abs/my lib")
        );
        assert_eq!(
            file_url_path("file:///${PROJECT_ROOT}/../lib").as_deref(),
            Some("/${PROJECT_ROOT}/../lib")
        );
        assert_eq!(
            file_url_path("file:../mono#egg=x&subdirectory=pkg").as_deref(),
            Some("../mono/pkg")
        );
        assert_eq!(file_url_path("https://example.com/x.whl"), None);
    }

    #[test]
    fn extras_are_not_part_of_the_path() {
        assert_eq!(strip_extras("./lib[dev, test]"), "./lib");
        assert_eq!(strip_extras("./lib"), "./lib");
    }
}
