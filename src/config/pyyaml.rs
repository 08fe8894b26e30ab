//! PyYAML's own rules where YAML 1.2 (saphyr) differs: where tabs may appear and which
//! explicit tags the safe loader constructs.

use std::ops::Range;

use saphyr_parser::Tag;

use super::node::{Pos, Value};
use super::scalar::{self, Scalar};
use super::yaml::YamlProblem;

/// PyYAML allows tabs only inside quoted scalars, block scalars and comments; YAML 1.2 (and
/// saphyr) also allows them as separation space. `scalars` holds the character ranges of the
/// quoted and block scalars as saphyr spans them (a quoted scalar's span may run on over the
/// blanks after its closing quote, so quotes are matched here). One pass over the text.
pub(crate) fn tab_problems(text: &str, scalars: &[Range<usize>]) -> Vec<YamlProblem> {
    let mut starts: Vec<&Range<usize>> = scalars.iter().collect();
    starts.sort_by_key(|r| r.start);
    let mut starts = starts.into_iter().peekable();
    let mut state = Within::Text;
    let mut problems = Vec::new();
    let (mut line, mut column) = (1, 1);
    let mut in_comment = false;
    let mut previous = '\n';
    let mut chars = text.chars().enumerate().peekable();
    while let Some((index, c)) = chars.next() {
        if matches!(state, Within::Text) {
            while starts.next_if(|r| r.start < index).is_some() {}
            if let Some(r) = starts.next_if(|r| r.start == index) {
                state = Within::Prefix(r.end);
            }
        }
        state = match state {
            Within::Prefix(end) | Within::Block(end) if index >= end => Within::Text,
            Within::Prefix(end) => match c {
                '"' | '\'' => Within::Quoted {
                    quote: c,
                    escaped: false,
                },
                '|' | '>' => Within::Block(end),
                _ => Within::Prefix(end),
            },
            Within::Quoted { quote, escaped } => {
                if escaped {
                    Within::Quoted {
                        quote,
                        escaped: false,
                    }
                } else if quote == '"' && c == '\\' {
                    Within::Quoted {
                        quote,
                        escaped: true,
                    }
                } else if c == quote
                    && quote == '\''
                    && chars.next_if(|(_, n)| *n == '\'').is_some()
                {
                    // `''` inside single quotes is a quote (both characters are consumed).
                    column += 1;
                    Within::Quoted {
                        quote,
                        escaped: false,
                    }
                } else if c == quote {
                    Within::Closing
                } else {
                    Within::Quoted {
                        quote,
                        escaped: false,
                    }
                }
            }
            other => other,
        };
        let inside = !matches!(state, Within::Text);
        if matches!(state, Within::Closing) {
            state = Within::Text;
        }
        if c == '\n' {
            in_comment = false;
        } else if c == '#' && !inside && previous.is_whitespace() {
            in_comment = true;
        } else if c == '\t' && !inside && !in_comment {
            problems.push(YamlProblem {
                pos: Pos { line, column },
                path: String::new(),
                message: "tab character outside a quoted value".into(),
                hint: "replace the tab with spaces (dagster-cloud reads the file with PyYAML, \
                       which rejects tabs here)"
                    .into(),
            });
            // One per line is enough.
            in_comment = true;
        }
        previous = c;
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    problems
}

/// Where the tab scan is, relative to the quoted and block scalars.
#[derive(Clone, Copy)]
enum Within {
    Text,
    /// In a scalar's span before its first character (tags, anchors); the span's end.
    Prefix(usize),
    /// In a block scalar, up to the end of its span.
    Block(usize),
    /// In a quoted scalar; `escaped` right after a `\` in double quotes.
    Quoted {
        quote: char,
        escaped: bool,
    },
    /// At the closing quote.
    Closing,
}

/// The non-specific tag `!` (saphyr gives it an empty handle and the suffix `!`): PyYAML
/// resolves what carries it as if it had no tag.
pub(crate) fn is_non_specific(tag: &Tag) -> bool {
    tag.handle.is_empty() && tag.suffix == "!"
}

pub(crate) enum Tagged {
    Value(Value),
    /// A core tag whose text PyYAML cannot construct (e.g. `!!int abc`).
    Invalid(String),
    Unsupported,
}

/// Explicitly tagged scalars: the core tags that PyYAML's safe loader constructs into plain
/// values. Other tags (`!!binary`, `!!timestamp`, custom `!foo`, ...) are unsupported.
pub(crate) fn tagged_scalar(text: &str, tag: &Tag) -> Tagged {
    if !tag.is_yaml_core_schema() {
        return Tagged::Unsupported;
    }
    let value = match tag.suffix.as_str() {
        "str" => Some(Value::Str(text.to_string())),
        "null" => Some(Value::Null),
        "bool" => scalar::parse_bool_any_case(text).map(Value::Bool),
        "int" if scalar::is_int(text) => match scalar::int_value(text) {
            Scalar::Int(i) => Some(Value::Int(i)),
            Scalar::Float(f) => Some(Value::Float(f)),
            _ => None,
        },
        "int" => None,
        "float" => scalar::tagged_float(text).map(Value::Float),
        _ => return Tagged::Unsupported,
    };
    match value {
        Some(value) => Tagged::Value(value),
        None => Tagged::Invalid(tag.suffix.clone()),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::yaml::parse;

    use super::*;

    #[test]
    fn tabs_only_where_pyyaml_allows_them() {
        // Accepted and rejected by PyYAML 6 exactly like this.
        let accepted = [
            "a: 'x\ty'\n",
            "a: |\n  x\ty\n",
            "a: |\n  \tx\n",
            "a: |\n  x\n  \t\n  y\n",
            "a: b # c\td\n",
            "a: 1\n# \tc\n",
        ];
        // Known difference: saphyr rejects a tab-indented continuation line of a multi-line
        // quoted scalar (`a: "x\n\ty"`), which PyYAML accepts.
        for text in accepted {
            assert_eq!(parse(text).problems, vec![], "{text:?}");
        }
        let rejected = [
            "a:\tb\n",
            "a: b\t# c\n",
            "-\ta\n",
            "- \ta\n",
            "a: [b,\tc]\n",
            "a: b\t\n",
            "a: x\ty\n",
            "a: x\n  \ty\n",
            "a: b\n\t\n",
            "- a:\tb\n",
            // After a quoted scalar the tab is separation space again.
            "image: \"i\"\t\n",
            "image: 'i'\t\n",
            "image: \"i\"\t# c\n",
            "env: [\"A=1\"\t]\n",
            "env: ['A=1'\t, 'B']\n",
        ];
        for text in rejected {
            let problems = parse(text).problems;
            assert_eq!(problems.len(), 1, "{text:?}: {problems:?}");
        }
        let problems = parse("a: 1\nb: 2\t\n").problems;
        assert_eq!(problems[0].pos, Pos { line: 2, column: 5 });
        assert_eq!(problems[0].message, "tab character outside a quoted value");
    }
}
