//! Repo-relative path helpers: `/`-separated, no `.`/`..`, `""` is the root.

/// Joins `rel` onto the repo-relative folder `base`, resolving `.` and `..` lexically.
/// `None` when the result would climb above the repository root.
pub fn join_normalized(base: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

/// `dir` joined with `name` (no normalisation).
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// The folder holding `path` (`""` for top-level paths).
pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

/// `path` is `prefix` itself or below it; `""` contains everything.
pub fn is_within(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.len() > prefix.len()
            && path.starts_with(prefix)
            && path.as_bytes()[prefix.len()] == b'/')
}

/// A repo-relative path for people and JSON: the root is `.`.
pub fn display(path: &str) -> std::borrow::Cow<'_, str> {
    if path.is_empty() {
        ".".into()
    } else {
        path.into()
    }
}

/// Repo-relative paths from git are bytes; non-UTF-8 names are shown lossily.
pub fn from_bytes(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_normalized_resolves_dots_and_refuses_to_leave_root() {
        assert_eq!(join_normalized("a/b", "../c").as_deref(), Some("a/c"));
        assert_eq!(join_normalized("a", "./x/./y/").as_deref(), Some("a/x/y"));
        assert_eq!(join_normalized("", ".").as_deref(), Some(""));
        assert_eq!(join_normalized("a", "../.."), None);
    }

    #[test]
    fn is_within_respects_segment_boundaries() {
        assert!(is_within("lib/a.py", "lib"));
        assert!(is_within("lib", "lib"));
        assert!(!is_within("library/a.py", "lib"));
        assert!(is_within("x", ""));
        assert_eq!(parent("a/b/c"), "a/b");
        assert_eq!(parent("c"), "");
    }
}
