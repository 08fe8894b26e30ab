//! What makes minijinja render like Jinja2, which the reference CLI uses: Python's string, list
//! and dict methods (`.lower()`, `.replace()`, `.split()`, `.startswith()`, `"{}".format()`,
//! `.items()`, ...) through minijinja-contrib's pycompat callback; the filters `truncate`,
//! `wordcount`, `wordwrap`, `filesizeformat`, `striptags` (options by position too, as in
//! Jinja2) and a `tojson` that writes what Python's `json.dumps` writes; values printed as
//! Python prints them (`True`, `None`, `['a', 1]`).
//!
//! Not supported: `%` string formatting (`"%s" % x`; use `"{}".format(x)` or `~`), and `~`
//! joins booleans as `true` (minijinja's own string conversion).

use std::fmt::Write as _;

use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Output, State, escape_formatter};

pub(crate) fn add_to(jinja: &mut Environment) {
    minijinja_contrib::add_to_environment(jinja);
    jinja.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    jinja.set_formatter(python_formatter);
    jinja.add_filter(
        "truncate",
        |state: &State, value: &Value, args: Rest<Value>, kwargs: Kwargs| {
            let kwargs = by_name(&["length", "killwords", "end", "leeway"], &args, kwargs)?;
            minijinja_contrib::filters::truncate(state, value, kwargs)
        },
    );
    jinja.add_filter(
        "wordwrap",
        |value: &Value, args: Rest<Value>, kwargs: Kwargs| {
            let names = [
                "width",
                "break_long_words",
                "wrapstring",
                "break_on_hyphens",
            ];
            minijinja_contrib::filters::wordwrap(value, by_name(&names, &args, kwargs)?)
        },
    );
    jinja.add_filter("tojson", tojson);
}

/// Jinja2's filters take their options by position or by name; minijinja-contrib's by name
/// only: positional `args` become the keyword arguments `names`, in order.
fn by_name(names: &[&str], args: &[Value], kwargs: Kwargs) -> Result<Kwargs, Error> {
    if args.len() > names.len() {
        return Err(Error::new(
            ErrorKind::TooManyArguments,
            format!("at most {} arguments", names.len()),
        ));
    }
    let mut all: Vec<(String, Value)> = names
        .iter()
        .zip(args)
        .map(|(name, value)| (name.to_string(), value.clone()))
        .collect();
    for name in kwargs.args() {
        if all.iter().any(|(n, _)| n == name) {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("`{name}` given twice"),
            ));
        }
        all.push((name.to_string(), kwargs.get::<Value>(name)?));
    }
    Ok(all.into_iter().collect())
}

/// Prints values as Jinja2 (Python) does: `True`, `None`, `['a', 1]`, `{'k': 'v'}`; strings
/// and numbers as they are.
fn python_formatter(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    match value.kind() {
        ValueKind::Bool | ValueKind::None | ValueKind::Seq | ValueKind::Map => {
            let mut text = String::new();
            python_repr(value, &mut text);
            out.write_str(&text)
                .map_err(|e| Error::new(ErrorKind::WriteFailure, e.to_string()))
        }
        _ => escape_formatter(out, state, value),
    }
}

fn python_repr(value: &Value, out: &mut String) {
    match value.kind() {
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::None => out.push_str("None"),
        ValueKind::String => python_str(value.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Map => {
            let map = value.kind() == ValueKind::Map;
            out.push(if map { '{' } else { '[' });
            for (i, item) in value.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_repr(&item, out);
                if map {
                    out.push_str(": ");
                    python_repr(&value.get_item(&item).unwrap_or_default(), out);
                }
            }
            out.push(if map { '}' } else { ']' });
        }
        _ => out.push_str(&value.to_string()),
    }
}

/// Python's `repr` of a string: single quotes unless only double quotes avoid escaping.
fn python_str(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Jinja2's `tojson`: `json.dumps` with sorted keys, `", "`/`": "` separators (`,` and
/// newlines with `indent`), non-ASCII escaped, and `<`, `>`, `&`, `'` escaped so the text is
/// safe in HTML.
fn tojson(value: &Value, indent: Option<usize>, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = match indent {
        Some(n) => Some(n),
        None => kwargs.get::<Option<usize>>("indent")?,
    };
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let mut out = String::new();
    write_json(&json, indent, 0, &mut out);
    Ok(Value::from_safe_string(out))
}

fn write_json(value: &serde_json::Value, indent: Option<usize>, depth: usize, out: &mut String) {
    use serde_json::Value as J;
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let separator = if indent.is_some() { "," } else { ", " };
    match value {
        J::String(s) => json_str(s, out),
        J::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(separator);
                }
                newline(out, depth + 1);
                write_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        J::Object(map) if !map.is_empty() => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(separator);
                }
                newline(out, depth + 1);
                json_str(key, out);
                out.push_str(": ");
                write_json(&map[key], indent, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A JSON string as Python writes it with `ensure_ascii`, HTML-safe as Jinja2's `tojson`.
fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' if !matches!(c, '<' | '>' | '&' | '\'') => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tojson_writes_what_python_writes() {
        let value = Value::from_serialize(serde_json::json!({
            "b": [1, "x<y & 'z'"],
            "a": {"é": true, "n": null},
        }));
        let kwargs = Kwargs::from_iter(Vec::<(&str, Value)>::new());
        let out = tojson(&value, None, kwargs).unwrap();
        assert_eq!(
            out.as_str(),
            Some(
                r#"{"a": {"n": null, "\u00e9": true}, "b": [1, "x\u003cy \u0026 \u0027z\u0027"]}"#
            )
        );
        let kwargs = Kwargs::from_iter(Vec::<(&str, Value)>::new());
        let out = tojson(&Value::from_serialize([1, 2]), Some(2), kwargs).unwrap();
        assert_eq!(out.as_str(), Some("[\n  1,\n  2\n]"));
    }
}
