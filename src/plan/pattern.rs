//! One `.dockerignore` pattern, matched exactly as Docker's `patternmatcher` matches it.
//!
//! Docker turns each pattern into one of four matchers (exact string, prefix for a trailing
//! `**`, suffix for a leading `**`, or a regular expression otherwise) and some of its quirks
//! follow from that choice (`**foo` matches `barfoo`; `[!a]` is a class containing `!`). We
//! reproduce the same choice so a context we send equals the one `docker build` would send.

use regex::Regex;

/// A compiled pattern (without its leading `!`).
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    /// The cleaned pattern text, as Docker keeps it (used for the exception-prefix rule).
    pub text: String,
    pub exclusion: bool,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Exact,
    /// Pattern ends in `**` and has no other wildcard: the text before `**` is a prefix.
    Prefix(String),
    /// Pattern starts with `**`: the text after `**` is a suffix.
    Suffix(String),
    Regex(Regex),
}

impl Pattern {
    /// Compiles a pattern that is already trimmed and cleaned; `!` marks an exception.
    pub fn new(raw: &str) -> Result<Pattern, String> {
        let cleaned = clean(raw);
        let (exclusion, text) = match cleaned.strip_prefix('!') {
            Some("") => return Err("`!` alone is not a pattern".to_string()),
            Some(rest) => (true, rest.to_string()),
            None => (false, cleaned),
        };
        validate_glob(&text)?;
        let kind = compile(&text)?;
        Ok(Pattern {
            text,
            exclusion,
            kind,
        })
    }

    /// Whether the slash-separated relative `path` matches this pattern (ignoring `!`).
    pub fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Kind::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Kind::Regex(re) => re.is_match(path),
        }
    }
}

/// Translates the glob into Docker's matcher kind; the regex dialect (RE2 there, `regex` here)
/// accepts the same translated text for every pattern `validate_glob` lets through.
fn compile(pattern: &str) -> Result<Kind, String> {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut detected = Detected::Exact;
    let mut i = 0;
    let mut first_token = true;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                // `**/` behaves as `**`.
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        re.push_str(".*");
                        detected = Detected::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    detected = Detected::Regex;
                }
                if first_token {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                detected = Detected::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                detected = Detected::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => match chars.get(i) {
                Some(next) => {
                    re.push('\\');
                    re.push(*next);
                    i += 1;
                    detected = Detected::Regex;
                }
                None => re.push('\\'),
            },
            '[' | ']' => {
                re.push(ch);
                detected = Detected::Regex;
            }
            _ => re.push(ch),
        }
        first_token = false;
    }
    Ok(match detected {
        Detected::Exact => Kind::Exact,
        Detected::Prefix => Kind::Prefix(pattern[..pattern.len() - 2].to_string()),
        Detected::Suffix => Kind::Suffix(pattern[2..].to_string()),
        Detected::Regex => {
            re.push('$');
            Kind::Regex(Regex::new(&re).map_err(|e| format!("cannot be translated: {e}"))?)
        }
    })
}

/// Rejects what Go's `filepath.Match` calls a bad pattern (Docker checks every pattern with it):
/// a trailing `\`, and character classes that are unclosed, empty or with a dangling `-`.
fn validate_glob(pattern: &str) -> Result<(), String> {
    let mut chars = pattern.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            // The guard consumes the escaped character, so an escaped `[` opens no class.
            '\\' if chars.next().is_none() => {
                return Err("ends with an unescaped `\\`".to_string());
            }
            '[' => {
                chars.next_if_eq(&'^');
                let mut ranges = 0;
                loop {
                    if ranges > 0 && chars.next_if_eq(&']').is_some() {
                        break;
                    }
                    class_char(&mut chars)?;
                    if chars.next_if_eq(&'-').is_some() {
                        class_char(&mut chars)?;
                    }
                    ranges += 1;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// One (possibly escaped) character inside a `[...]` class, as Go's `getEsc` reads it.
fn class_char(chars: &mut std::iter::Peekable<std::str::Chars>) -> Result<(), String> {
    let bad = || Err("has a malformed character class `[...]`".to_string());
    match chars.next() {
        None | Some('-') | Some(']') => return bad(),
        Some('\\') => {
            if chars.next().is_none() {
                return bad();
            }
        }
        Some(_) => {}
    }
    // A class character is never the last one of the pattern: the class must still close.
    if chars.peek().is_none() {
        return bad();
    }
    Ok(())
}

/// Go's `path.Clean`: drops empty and `.` segments, resolves `..`, no trailing `/`.
pub(crate) fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|last| *last != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        Pattern::new(pattern).unwrap().matches(path)
    }

    #[test]
    fn clean_like_go() {
        assert_eq!(clean(""), ".");
        assert_eq!(clean("a//b/./c/"), "a/b/c");
        assert_eq!(clean("a/../../b"), "../b");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("/"), "/");
        assert_eq!(clean("./"), ".");
    }

    #[test]
    fn star_stays_in_one_segment() {
        assert!(m("*.md", "a.md"));
        assert!(!m("*.md", "docs/a.md"));
        assert!(m("*/temp*", "somedir/temporary.txt"));
        assert!(!m("*/temp*", "temp"));
        assert!(m("temp?", "tempa"));
        assert!(!m("temp?", "temp/a"));
    }

    #[test]
    fn double_star_forms() {
        assert!(m("**/*.go", "a.go"));
        assert!(m("**/*.go", "x/y/a.go"));
        assert!(m("**/foo", "foo"));
        assert!(m("**/foo", "a/b/foo"));
        assert!(!m("**/foo", "afoo"));
        // Docker's suffix matcher: `**foo` matches any path ending in foo.
        assert!(m("**foo", "barfoo"));
        assert!(m("dir/**", "dir/a/b"));
        assert!(!m("dir/**", "dir"));
        assert!(m("a/**/b", "a/b"));
        assert!(m("a/**/b", "a/x/y/b"));
        assert!(m("**", "anything/at/all"));
    }

    #[test]
    fn regex_metacharacters_are_literal() {
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b*", "axb"));
        assert!(m("(x)+*", "(x)+yz"));
        assert!(m("a$b?", "a$bc"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(m("file[0-9]", "file7"));
        assert!(!m("file[0-9]", "filex"));
        assert!(m("file[^0-9]", "filex"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
    }

    #[test]
    fn exclusion_flag_and_text() {
        let p = Pattern::new("!docs/keep.txt").unwrap();
        assert!(p.exclusion);
        assert_eq!(p.text, "docs/keep.txt");
        assert!(p.matches("docs/keep.txt"));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        for bad in ["!", "a[", "a\\", "[]a]", "[-a]", "[a-]", "x[a"] {
            assert!(Pattern::new(bad).is_err(), "{bad} should be rejected");
        }
        for good in ["[a-c]x", "[\\]]", "[^a]b", "a?b"] {
            assert!(Pattern::new(good).is_ok(), "{good} should be accepted");
        }
    }
}
