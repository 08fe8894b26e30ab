//! The `to_yaml` template filter: block-style YAML like PyYAML's `yaml.dump` defaults (sorted
//! keys, lists not indented under their key, `...` after a plain scalar document). Strings are
//! quoted whenever YAML 1.1 would read them as something else, so the value round-trips.

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind};

use super::scalar::{self, Scalar};

pub(crate) fn to_yaml(value: &Value) -> Result<String, Error> {
    if is_collection(value)? {
        Ok(lines(value)?.join("\n") + "\n")
    } else {
        let (text, plain) = scalar_text(value)?;
        Ok(if plain {
            format!("{text}\n...\n")
        } else {
            format!("{text}\n")
        })
    }
}

/// A non-empty list or mapping (empty ones are written inline as `[]` / `{}`).
fn is_collection(value: &Value) -> Result<bool, Error> {
    Ok(match value.kind() {
        ValueKind::Seq | ValueKind::Iterable | ValueKind::Map => value.len().unwrap_or(0) > 0,
        _ => false,
    })
}

fn lines(value: &Value) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    if value.kind() == ValueKind::Map {
        let mut keys: Vec<Value> = value.try_iter()?.collect();
        keys.sort_by_key(|k| k.to_string());
        for key in keys {
            let item = value.get_item(&key)?;
            let (key_text, _) = scalar_text(&key)?;
            if !is_collection(&item)? {
                out.push(format!("{key_text}: {}", scalar_text(&item)?.0));
                continue;
            }
            out.push(format!("{key_text}:"));
            let nested = lines(&item)?;
            if item.kind() == ValueKind::Map {
                out.extend(nested.into_iter().map(|l| format!("  {l}")));
            } else {
                out.extend(nested);
            }
        }
    } else {
        for item in value.try_iter()? {
            if !is_collection(&item)? {
                out.push(format!("- {}", scalar_text(&item)?.0));
                continue;
            }
            for (i, line) in lines(&item)?.into_iter().enumerate() {
                out.push(if i == 0 {
                    format!("- {line}")
                } else {
                    format!("  {line}")
                });
            }
        }
    }
    Ok(out)
}

/// A scalar (or empty collection) as YAML text, and whether it was written plain.
fn scalar_text(value: &Value) -> Result<(String, bool), Error> {
    Ok(match value.kind() {
        ValueKind::Undefined | ValueKind::None => ("null".into(), true),
        ValueKind::Bool => (value.is_true().to_string(), true),
        ValueKind::Number if value.is_integer() => (value.to_string(), true),
        ValueKind::Number => (float_text(f64::try_from(value.clone())?), true),
        ValueKind::String => string_text(value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => ("[]".into(), true),
        ValueKind::Map => ("{}".into(), true),
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("to_yaml cannot write a value of type {}", value.kind()),
            ));
        }
    })
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        ".nan".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        }
    } else if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        f.to_string()
    }
}

fn string_text(s: &str) -> (String, bool) {
    if s.chars().any(|c| c.is_control()) {
        return (double_quoted(s), false);
    }
    if is_plain_safe(s) {
        (s.to_string(), true)
    } else {
        (format!("'{}'", s.replace('\'', "''")), false)
    }
}

/// Whether `s` reads back as this same string when written without quotes.
fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    matches!(scalar::resolve_plain(s), Scalar::Str(_))
        && !"-?:,[]{}#&*!|>'\"%@`".contains(first)
        && !s.starts_with(' ')
        && !s.ends_with(' ')
        && !s.ends_with(':')
        && !s.contains(": ")
        && !s.contains(" #")
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_as_pyyaml_writes_them() {
        assert_eq!(to_yaml(&Value::from("abc")).unwrap(), "abc\n...\n");
        assert_eq!(to_yaml(&Value::from(5)).unwrap(), "5\n...\n");
        assert_eq!(to_yaml(&Value::from(1.0)).unwrap(), "1.0\n...\n");
        assert_eq!(to_yaml(&Value::from("")).unwrap(), "''\n");
        assert_eq!(to_yaml(&Value::from("yes")).unwrap(), "'yes'\n");
        assert_eq!(to_yaml(&Value::from("a: b")).unwrap(), "'a: b'\n");
        assert_eq!(to_yaml(&Value::from("it's")).unwrap(), "it's\n...\n");
        assert_eq!(to_yaml(&Value::from("a\nb")).unwrap(), "\"a\\nb\"\n");
    }

    #[test]
    fn collections_in_block_style_with_sorted_keys() {
        let value = Value::from_serialize(serde_json::json!({
            "b": [1, "yes", {"k": "v", "a": []}],
            "a": "x",
            "c": {"d": {}}
        }));
        assert_eq!(
            to_yaml(&value).unwrap(),
            "a: x\nb:\n- 1\n- 'yes'\n- a: []\n  k: v\nc:\n  d: {}\n"
        );
    }
}
