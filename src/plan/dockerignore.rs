//! `.dockerignore`: reading the file and deciding, path by path, what the build context leaves
//! out — with the Docker CLI's own rules (moby `patternmatcher` and `ignorefile`):
//!
//! - `#` in column 1 starts a comment; lines are trimmed; blank lines are skipped.
//! - Each pattern is cleaned like a path (`a//b/` is `a/b`, so a trailing `/` changes nothing)
//!   and a leading `/` is dropped: patterns are always relative to the context root.
//! - `*` and `?` never cross `/`; `**` spans any number of directories (zero included).
//! - `!` makes an exception; the last pattern that matches a path decides.
//! - A path is also excluded when one of its parent directories is.
//!
//! The per-pattern parent results are carried down the walk like Docker's `MatchInfo`, which
//! is what makes quirks such as `!**/*.py` not reaching into an excluded directory identical.

use super::pattern::Pattern;

/// The file name Docker reads at the root of the build context.
pub const DOCKERIGNORE: &str = ".dockerignore";

/// The ignore files that may apply to a build, most specific first: `<Dockerfile>.dockerignore`
/// beside the Dockerfile (BuildKit's per-Dockerfile file), then `.dockerignore` at the context
/// root. The first that exists wins. Paths are joined with `/` onto the given folders.
pub fn ignore_file_candidates(context_dir: &str, dockerfile: &str) -> [String; 2] {
    let root = if context_dir.is_empty() {
        DOCKERIGNORE.to_string()
    } else {
        format!("{context_dir}/{DOCKERIGNORE}")
    };
    [format!("{dockerfile}{DOCKERIGNORE}"), root]
}

/// A problem in a `.dockerignore` file; `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: invalid pattern `{pattern}`: {reason}")]
pub struct PatternError {
    pub line: usize,
    pub pattern: String,
    pub reason: String,
}

/// The ordered patterns of one `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

/// Per-pattern results for a directory, handed to its children (Docker's `MatchInfo`).
#[derive(Debug, Clone, Default)]
pub struct ParentMatches(Vec<bool>);

impl DockerIgnore {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<DockerIgnore, PatternError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut ignore = DockerIgnore::default();
        for (index, line) in text.lines().enumerate() {
            if let Some(pattern) = normalize_line(line) {
                ignore.push(&pattern).map_err(|reason| PatternError {
                    line: index + 1,
                    pattern: line.trim().to_string(),
                    reason,
                })?;
            }
        }
        Ok(ignore)
    }

    /// Appends one pattern in file syntax (e.g. `!Dockerfile`).
    pub fn push(&mut self, pattern: &str) -> Result<(), String> {
        let pattern = pattern.trim();
        if !pattern.is_empty() {
            self.patterns.push(Pattern::new(pattern)?);
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern is an exception (`!...`).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `path` (relative, `/`-separated) is excluded, given its parent directory's
    /// results (`None` for entries at the context root). Returns the results for `path`'s own
    /// children too.
    pub fn matches(&self, path: &str, parent: Option<&ParentMatches>) -> (bool, ParentMatches) {
        let parent = parent.map(|p| p.0.as_slice()).filter(|p| !p.is_empty());
        let mut excluded = false;
        let mut own = vec![false; self.patterns.len()];
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut matched = parent.is_some_and(|p| p.get(i).copied().unwrap_or(false));
            if !matched {
                // A pattern that cannot change the outcome is not evaluated, and then does not
                // count as matched for the children either (as in Docker).
                if pattern.exclusion != excluded {
                    continue;
                }
                matched = pattern.matches(path)
                    || (parent.is_none() && any_parent_matches(pattern, path));
            }
            own[i] = matched;
            if matched {
                excluded = !pattern.exclusion;
            }
        }
        (excluded, ParentMatches(own))
    }

    /// Whether `path` or one of its parent directories is excluded (no walk state needed).
    pub fn matches_or_parent_matches(&self, path: &str) -> bool {
        self.matches(path, None).0
    }

    /// Whether an excluded directory must still be entered because an exception may re-include
    /// something below it: Docker only looks for exceptions whose text starts with the dir.
    pub fn exception_below(&self, dir: &str) -> bool {
        let dir_slash = format!("{dir}/");
        self.patterns
            .iter()
            .any(|p| p.exclusion && format!("{}/", p.text).starts_with(&dir_slash))
    }
}

impl DockerIgnore {
    /// BuildKit's file sync (fsutil) skips a directory whose walk cannot matter when every
    /// pattern of one kind (`exclusion`: exceptions, else plain patterns) is glob-free: their
    /// texts without a trailing `/**` or `/*`. `None` when one has a glob character.
    pub fn plain_prefixes(&self, exclusion: bool) -> Option<Vec<&str>> {
        let mut out = Vec::new();
        for pattern in self.patterns.iter().filter(|p| p.exclusion == exclusion) {
            let text = pattern.text.as_str();
            let text = text.strip_suffix("/**").unwrap_or(text);
            let text = text.strip_suffix("/*").unwrap_or(text);
            if text.contains(['*', '[', ']', '?', '^', '\\']) {
                return None;
            }
            out.push(text);
        }
        Some(out)
    }
}

/// One line of the file as Docker's `ignorefile.ReadAll` normalises it; `None` to skip it.
fn normalize_line(line: &str) -> Option<String> {
    // Comments are recognised before trimming: ` # x` is a pattern.
    if line.starts_with('#') {
        return None;
    }
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let (invert, rest) = match line.strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, line),
    };
    let mut pattern = String::new();
    if !rest.is_empty() {
        let cleaned = super::pattern::clean(rest);
        pattern = match cleaned.strip_prefix('/') {
            Some(relative) if !relative.is_empty() => relative.to_string(),
            _ => cleaned,
        };
    }
    Some(if invert {
        format!("!{pattern}")
    } else {
        pattern
    })
}

fn any_parent_matches(pattern: &Pattern, path: &str) -> bool {
    path.match_indices('/')
        .any(|(end, _)| pattern.matches(&path[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).unwrap()
    }

    /// Walks `paths` (parents listed before children) like the context builder does.
    fn excluded(ignore: &DockerIgnore, paths: &[&str]) -> Vec<String> {
        let mut infos: std::collections::HashMap<String, ParentMatches> = Default::default();
        let mut out = Vec::new();
        for path in paths {
            let parent = path.rsplit_once('/').map(|(dir, _)| dir.to_string());
            let parent_info = parent.as_ref().and_then(|d| infos.get(d));
            let (skip, info) = ignore.matches(path, parent_info);
            infos.insert(path.to_string(), info);
            if skip {
                out.push(path.to_string());
            }
        }
        out
    }

    #[test]
    fn comments_blank_lines_and_normalisation() {
        let ig = ignore("\u{feff}# comment\n\n  /build/  \n logs//x/./ \n # spaced\n");
        assert!(ig.matches_or_parent_matches("build"));
        assert!(ig.matches_or_parent_matches("build/out.bin"));
        assert!(!ig.matches_or_parent_matches("sub/build"));
        assert!(ig.matches_or_parent_matches("logs/x"));
        // Only column 1 starts a comment.
        assert!(ig.matches_or_parent_matches("# spaced"));
        assert!(!ig.matches_or_parent_matches("# comment"));
    }

    #[test]
    fn last_matching_line_wins() {
        let ig = ignore("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(ig.matches_or_parent_matches("CHANGES.md"));
        assert!(!ig.matches_or_parent_matches("README.md"));
        assert!(ig.matches_or_parent_matches("README-secret.md"));
        let ig = ignore("*.md\nREADME-secret.md\n!README*.md\n");
        assert!(!ig.matches_or_parent_matches("README-secret.md"));
    }

    #[test]
    fn parent_exclusion_covers_children_unless_excepted() {
        let ig = ignore("docs\n!docs/keep.txt\n");
        let out = excluded(
            &ig,
            &["docs", "docs/a.txt", "docs/keep.txt", "src", "src/docs"],
        );
        assert_eq!(out, ["docs", "docs/a.txt"]);
        assert!(ig.exception_below("docs"));
        assert!(!ig.exception_below("src"));
    }

    #[test]
    fn double_star_exception_does_not_reach_into_excluded_dir_prefix_rule() {
        // Docker enters an excluded dir only when an exception's text starts with that dir.
        let ig = ignore("vendor\n!**/*.py\n");
        assert!(!ig.exception_below("vendor"));
        let ig = ignore("vendor\n!vendor/**/*.py\n");
        assert!(ig.exception_below("vendor"));
        let out = excluded(
            &ig,
            &[
                "vendor",
                "vendor/a.py",
                "vendor/x",
                "vendor/x/b.py",
                "vendor/c.txt",
            ],
        );
        assert_eq!(out, ["vendor", "vendor/x", "vendor/c.txt"]);
    }

    #[test]
    fn whitelist_style() {
        let ig = ignore("*\n!src\n!Dockerfile\n");
        let out = excluded(
            &ig,
            &[
                "Dockerfile",
                "README",
                "src",
                "src/a.py",
                "tests",
                "tests/t.py",
            ],
        );
        assert_eq!(out, ["README", "tests", "tests/t.py"]);
    }

    #[test]
    fn exception_of_leading_slash_path() {
        let ig = ignore("! /keep/me\n*\n!/keep/me\n");
        assert!(!ig.matches_or_parent_matches("keep/me"));
        assert!(ig.matches_or_parent_matches("keep/other"));
    }

    #[test]
    fn errors_name_the_line() {
        let err = DockerIgnore::parse("ok\n\n!\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert_eq!(
            err.to_string(),
            "line 3: invalid pattern `!`: `!` alone is not a pattern"
        );
        let err = DockerIgnore::parse("a[b\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.reason.contains("character class"), "{err}");
    }

    #[test]
    fn empty_file_excludes_nothing() {
        let ig = ignore("# only a comment\n\n");
        assert!(ig.is_empty());
        assert!(!ig.has_exceptions());
        assert!(!ig.matches_or_parent_matches("anything"));
    }
}
