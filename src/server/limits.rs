//! Bounds on one GraphQL request, checked before anything recurses, validates or executes: a
//! token holder must not be able to crash the server (deep values overflow the parser's
//! stack), make it work exponentially (fragment and alias bombs) or answer without end.
//!
//! In order: `check_nesting` on the raw text (the parser recurses on nested values before any
//! of async-graphql's own limits run), then `check_selections` on the parsed document
//! (fragment spreads expanded under a budget, aliases counted), then async-graphql's
//! `limit_depth`, `limit_complexity` (expensive root fields cost `EXPENSIVE_FIELD`) and
//! `limit_directives` (`build_schema`), and after execution `MAX_ANSWER_BYTES`.

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// Brackets, braces and parentheses open at once in a query text. The reference client's
/// deepest query nests 8.
pub const MAX_QUERY_NESTING: usize = 64;
/// Fields, fragment spreads and inline fragments in the operations, fragments expanded.
pub const MAX_SELECTIONS: usize = 1_000;
/// Aliased fields, fragments expanded (the reference client sends none).
pub const MAX_ALIASES: usize = 30;
/// Selection-set depth (the reference client's deepest is 6).
pub const MAX_DEPTH: usize = 16;
/// async-graphql complexity: every field costs 1 plus its children.
pub const MAX_COMPLEXITY: usize = 1_000;
/// Extra cost of a root field that reads whole documents (`locationsAsDocument`, ...): at most
/// three per request (each answer is bounded by `store::MAX_DEPLOYMENT_BYTES` or
/// `MAX_HISTORY_PAGE_BYTES`).
pub const EXPENSIVE_FIELD: usize = 300;
/// Directives on one field.
pub const MAX_DIRECTIVES: usize = 8;
/// Largest answer body; above it the request gets an error instead.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// Longest error message in an answer (parse errors would echo the query otherwise).
pub const MAX_ERROR_CHARS: usize = 500;
/// Most file names in one `generateServerlessPexUrl` (the clients ask for 1 to 3).
pub const MAX_PEX_FILENAMES: usize = 100;

/// Why a request was refused before execution; the message is safe to send back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error(
        "the query nests brackets, braces or parentheses more than {MAX_QUERY_NESTING} deep; \
         pass large values as variables"
    )]
    TooDeep,
    #[error("the query has more than {MAX_SELECTIONS} fields (fragments expanded)")]
    TooManySelections,
    #[error("the query has more than {MAX_ALIASES} aliased fields")]
    TooManyAliases,
    #[error("syntax error in the query at line {line}, column {column}: {expected}")]
    Syntax {
        line: usize,
        column: usize,
        expected: String,
    },
}

/// Deepest nesting of `[`, `{` and `(` outside strings and comments must stay within
/// `MAX_QUERY_NESTING`. Linear, no recursion.
pub fn check_nesting(query: &str) -> Result<(), LimitError> {
    let bytes = query.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                // Block string: ends at the next unescaped `"""`.
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'[' | b'{' | b'(' => {
                depth += 1;
                if depth > MAX_QUERY_NESTING {
                    return Err(LimitError::TooDeep);
                }
            }
            b']' | b'}' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Parses the query (after `check_nesting`), turning syntax errors into a short message
/// that does not echo the query.
pub fn parse(query: &str) -> Result<ExecutableDocument, LimitError> {
    check_nesting(query)?;
    async_graphql::parser::parse_query(query).map_err(|e| {
        let pos = e.positions().next();
        let expected = match &e {
            async_graphql::parser::Error::Syntax { message, .. } => message
                .lines()
                .find_map(|l| l.trim_start().strip_prefix("= "))
                .unwrap_or("unexpected input")
                .to_string(),
            other => other.to_string(),
        };
        LimitError::Syntax {
            line: pos.map_or(0, |p| p.line),
            column: pos.map_or(0, |p| p.column),
            expected: truncate(&expected, 200),
        }
    })
}

/// Counts the selections and aliases of every operation, expanding fragment spreads, and
/// stops as soon as a limit is passed: the work is bounded by the limits, not the document.
pub fn check_selections(doc: &ExecutableDocument) -> Result<(), LimitError> {
    struct Walk<'a> {
        fragments: HashMap<&'a str, &'a SelectionSet>,
        selections: usize,
        aliases: usize,
    }
    impl<'a> Walk<'a> {
        fn set(&mut self, set: &'a SelectionSet, depth: usize) -> Result<(), LimitError> {
            // Fragment cycles are refused by validation later; cut them off here.
            if depth > MAX_DEPTH * 4 {
                return Err(LimitError::TooManySelections);
            }
            for item in &set.items {
                self.selections += 1;
                if self.selections > MAX_SELECTIONS {
                    return Err(LimitError::TooManySelections);
                }
                match &item.node {
                    Selection::Field(f) => {
                        if f.node.alias.is_some() {
                            self.aliases += 1;
                            if self.aliases > MAX_ALIASES {
                                return Err(LimitError::TooManyAliases);
                            }
                        }
                        self.set(&f.node.selection_set.node, depth + 1)?;
                    }
                    Selection::InlineFragment(f) => {
                        self.set(&f.node.selection_set.node, depth + 1)?
                    }
                    Selection::FragmentSpread(s) => {
                        if let Some(set) = self.fragments.get(s.node.fragment_name.node.as_str()) {
                            self.set(set, depth + 1)?;
                        }
                    }
                }
            }
            Ok(())
        }
    }
    let mut walk = Walk {
        fragments: doc
            .fragments
            .iter()
            .map(|(name, f)| (name.as_str(), &f.node.selection_set.node))
            .collect(),
        selections: 0,
        aliases: 0,
    };
    for (_, op) in doc.operations.iter() {
        walk.set(&op.node.selection_set.node, 0)?;
    }
    // Unused fragments are refused by validation, but are walked by it first.
    for set in doc.fragments.values() {
        walk.set(&set.node.selection_set.node, 0)?;
    }
    Ok(())
}

/// At most `max` characters, with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_counts_brackets_outside_strings_and_comments() {
        let deep = format!("{{ a(x: {}1{}) }}", "[".repeat(70), "]".repeat(70));
        assert_eq!(check_nesting(&deep), Err(LimitError::TooDeep));
        let quoted = format!(
            "{{ a(x: \"{}\", y: \"\"\"{}\"\"\") }} # {}",
            "[".repeat(100),
            "{".repeat(100),
            "(".repeat(100)
        );
        assert_eq!(check_nesting(&quoted), Ok(()));
        assert_eq!(check_nesting(r#"{ a(x: "\"[[[") }"#), Ok(()));
    }

    #[test]
    fn fragment_bombs_stop_at_the_budget() {
        let mut q = String::from("query { ...f0 }\n");
        for i in 0..30 {
            q.push_str(&format!(
                "fragment f{i} on Query {{ ...f{} ...f{} }}\n",
                i + 1,
                i + 1
            ));
        }
        q.push_str("fragment f30 on Query { __typename }\n");
        let doc = parse(&q).unwrap();
        assert_eq!(check_selections(&doc), Err(LimitError::TooManySelections));
    }

    #[test]
    fn aliases_are_counted() {
        let q: String = (0..31).map(|i| format!("a{i}: __typename ")).collect();
        let doc = parse(&format!("{{ {q} }}")).unwrap();
        assert_eq!(check_selections(&doc), Err(LimitError::TooManyAliases));
    }

    #[test]
    fn syntax_errors_do_not_echo_the_query() {
        let secret_line = format!("{{ a {} ", "x".repeat(10_000));
        let err = parse(&format!("{secret_line} (")).unwrap_err();
        let text = err.to_string();
        assert!(text.len() < 400, "{text}");
        assert!(
            text.starts_with("syntax error in the query at line 1"),
            "{text}"
        );
    }
}
