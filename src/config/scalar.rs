//! Typing of plain YAML scalars the way PyYAML's `SafeLoader` does it (YAML 1.1), minus
//! timestamps (dagster's loader removes that resolver, so `2024-01-01` stays a string).
//!
//! The reference CLI reads `dagster_cloud.yaml` with PyYAML, so `on`, `yes` and `off` are
//! booleans, `1.0` is a float, `0o17` and `1e3` are strings and `017` is an octal integer. Our
//! accept/reject decisions depend on these types (e.g. `image: on` is rejected by the reference
//! because a boolean is not a string), so we resolve exactly as PyYAML does.

/// The value of a scalar after YAML 1.1 resolution.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A plain `=`: PyYAML resolves it to the `value` tag, which its safe loader cannot
    /// construct, so the reference rejects the file.
    ValueTag,
    /// A plain `<<`: a merge key.
    Merge,
}

/// Resolves an untagged plain scalar.
pub(crate) fn resolve_plain(text: &str) -> Scalar {
    if is_null(text) {
        Scalar::Null
    } else if let Some(b) = parse_bool(text) {
        Scalar::Bool(b)
    } else if is_float(text) {
        Scalar::Float(float_value(text))
    } else if is_int(text) {
        int_value(text)
    } else if text == "<<" {
        Scalar::Merge
    } else if text == "=" {
        Scalar::ValueTag
    } else {
        Scalar::Str(text.to_string())
    }
}

pub(crate) fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// PyYAML's YAML 1.1 booleans (`y`/`n` are deliberately not among them).
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// `!!bool` values: PyYAML looks the lower-cased text up among the YAML 1.1 words.
pub(crate) fn parse_bool_any_case(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" => Some(true),
        "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// `!!float` values: PyYAML hands the text (underscores removed) to Python's `float`, which
/// is more lenient than the implicit resolver (`1e3` is fine there).
pub(crate) fn tagged_float(text: &str) -> Option<f64> {
    if is_float(text) {
        return Some(float_value(text));
    }
    let cleaned: String = text.chars().filter(|&c| c != '_').collect();
    cleaned.trim().parse::<f64>().ok()
}

/// Splits an optional leading sign.
fn unsigned(text: &str) -> &str {
    text.strip_prefix(['-', '+']).unwrap_or(text)
}

fn all(s: &str, f: impl Fn(char) -> bool) -> bool {
    s.chars().all(f)
}

fn is_digit_(c: char) -> bool {
    c.is_ascii_digit() || c == '_'
}

/// `(:[0-5]?[0-9])+` (the part after the first number of a sexagesimal value).
fn is_sexagesimal_tail(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(':') else {
        return false;
    };
    rest.split(':').all(|part| match part.as_bytes() {
        [d] => d.is_ascii_digit(),
        [a, b] => (b'0'..=b'5').contains(a) && b.is_ascii_digit(),
        _ => false,
    })
}

/// `[eE][-+][0-9]+`, optional.
fn is_exponent_opt(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    let Some(rest) = s.strip_prefix(['e', 'E']) else {
        return false;
    };
    let Some(digits) = rest.strip_prefix(['-', '+']) else {
        return false;
    };
    !digits.is_empty() && all(digits, |c| c.is_ascii_digit())
}

/// Splits `s` at the first of `[0-9_]*` after position 0, returning (run, rest).
fn split_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !is_digit_(c)).unwrap_or(s.len());
    s.split_at(end)
}

pub(crate) fn is_float(text: &str) -> bool {
    // `\.(nan|NaN|NAN)` (no sign)
    if matches!(text, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    // `\.[0-9][0-9_]*([eE][-+][0-9]+)?` (no sign)
    if let Some(rest) = text.strip_prefix('.')
        && rest.starts_with(|c: char| c.is_ascii_digit())
    {
        let (_, tail) = split_digits(rest);
        return is_exponent_opt(tail);
    }
    let body = unsigned(text);
    if matches!(body, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    if !body.starts_with(|c: char| c.is_ascii_digit()) {
        return false;
    }
    let (_, rest) = split_digits(body);
    // `[-+]?[0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)?`
    if let Some(frac) = rest.strip_prefix('.') {
        let (_, tail) = split_digits(frac);
        return is_exponent_opt(tail);
    }
    // `[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*`
    if let Some(dot) = rest.rfind('.') {
        let (sexa, frac) = rest.split_at(dot);
        return is_sexagesimal_tail(sexa) && all(&frac[1..], is_digit_);
    }
    false
}

pub(crate) fn is_int(text: &str) -> bool {
    let body = unsigned(text);
    if let Some(bits) = body.strip_prefix("0b") {
        return !bits.is_empty() && all(bits, |c| matches!(c, '0' | '1' | '_'));
    }
    if let Some(hex) = body.strip_prefix("0x") {
        return !hex.is_empty() && all(hex, |c| c.is_ascii_hexdigit() || c == '_');
    }
    if body == "0" {
        return true;
    }
    if let Some(oct) = body.strip_prefix('0') {
        return !oct.is_empty() && all(oct, |c| matches!(c, '0'..='7' | '_'));
    }
    if !body.starts_with(|c: char| ('1'..='9').contains(&c)) {
        return false;
    }
    let (_, rest) = split_digits(body);
    rest.is_empty() || is_sexagesimal_tail(rest)
}

/// The value of a scalar that [`is_int`] accepted, as PyYAML computes it. Integers beyond
/// `i64` become floats (they are only ever compared or copied into JSON).
pub(crate) fn int_value(text: &str) -> Scalar {
    let cleaned: String = text.chars().filter(|&c| c != '_').collect();
    let negative = cleaned.starts_with('-');
    let body = unsigned(&cleaned);
    let parsed: Option<i128> = if let Some(bits) = body.strip_prefix("0b") {
        i128::from_str_radix(bits, 2).ok()
    } else if let Some(hex) = body.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()
    } else if body.len() > 1 && body.starts_with('0') {
        i128::from_str_radix(body, 8).ok()
    } else if body.contains(':') {
        body.split(':').try_fold(0i128, |acc, part| {
            part.parse::<i128>()
                .ok()
                .and_then(|d| acc.checked_mul(60)?.checked_add(d))
        })
    } else {
        body.parse::<i128>().ok()
    };
    let signed = parsed.map(|v| if negative { -v } else { v });
    match signed.and_then(|v| i64::try_from(v).ok()) {
        Some(v) => Scalar::Int(v),
        // Only reachable for huge literals: keep the magnitude as a float.
        None => Scalar::Float(cleaned.parse::<f64>().unwrap_or(f64::NAN)),
    }
}

/// The value of a scalar that [`is_float`] accepted, as PyYAML computes it.
pub(crate) fn float_value(text: &str) -> f64 {
    let cleaned: String = text
        .chars()
        .filter(|&c| c != '_')
        .collect::<String>()
        .to_ascii_lowercase();
    let sign = if cleaned.starts_with('-') { -1.0 } else { 1.0 };
    let body = unsigned(&cleaned);
    if body == ".inf" {
        return sign * f64::INFINITY;
    }
    if body == ".nan" {
        return f64::NAN;
    }
    if body.contains(':') {
        let mut value = 0.0;
        for part in body.split(':') {
            value = value * 60.0 + part.parse::<f64>().unwrap_or(f64::NAN);
        }
        return sign * value;
    }
    sign * body.parse::<f64>().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_1_1_booleans() {
        for t in ["yes", "Yes", "on", "ON", "true", "True"] {
            assert_eq!(resolve_plain(t), Scalar::Bool(true), "{t}");
        }
        for t in ["no", "off", "Off", "false", "FALSE"] {
            assert_eq!(resolve_plain(t), Scalar::Bool(false), "{t}");
        }
        // PyYAML leaves these as strings.
        for t in ["y", "n", "oN", "tRue", "yES"] {
            assert_eq!(resolve_plain(t), Scalar::Str(t.into()), "{t}");
        }
    }

    #[test]
    fn nulls() {
        for t in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(resolve_plain(t), Scalar::Null, "{t:?}");
        }
        assert_eq!(resolve_plain("nULL"), Scalar::Str("nULL".into()));
    }

    #[test]
    fn integers() {
        let cases = [
            ("0", 0),
            ("5", 5),
            ("-5", -5),
            ("+5", 5),
            ("1_000", 1000),
            ("017", 15),
            ("0x1F", 31),
            ("-0x10", -16),
            ("0b101", 5),
            ("1:30", 90),
            ("190:20:30", 685230),
        ];
        for (t, v) in cases {
            assert_eq!(resolve_plain(t), Scalar::Int(v), "{t}");
        }
        // Not integers in YAML 1.1: stay strings.
        for t in [
            "0o17", "08", "1e3", "1:60", "0x", "0b", "12a", "-", "1_000a",
        ] {
            assert_eq!(resolve_plain(t), Scalar::Str(t.into()), "{t}");
        }
    }

    #[test]
    fn floats() {
        let cases = [
            ("1.0", 1.0),
            ("1.", 1.0),
            ("-2.5", -2.5),
            (".5", 0.5),
            ("1.5e+3", 1500.0),
            ("1_0.5", 10.5),
            ("1:30.5", 90.5),
            ("3.11", 3.11),
        ];
        for (t, v) in cases {
            assert_eq!(resolve_plain(t), Scalar::Float(v), "{t}");
        }
        assert_eq!(resolve_plain(".inf"), Scalar::Float(f64::INFINITY));
        assert_eq!(resolve_plain("-.Inf"), Scalar::Float(f64::NEG_INFINITY));
        assert!(matches!(resolve_plain(".nan"), Scalar::Float(v) if v.is_nan()));
        // The exponent needs a sign and the mantissa a dot in YAML 1.1.
        for t in ["1.0e3", "1e+3", "-.nan", "+.5", "1.2.3", "v1.0"] {
            assert_eq!(resolve_plain(t), Scalar::Str(t.into()), "{t}");
        }
    }

    #[test]
    fn special_plain_scalars() {
        assert_eq!(resolve_plain("<<"), Scalar::Merge);
        assert_eq!(resolve_plain("="), Scalar::ValueTag);
        // Timestamps are not resolved by dagster's loader.
        assert_eq!(
            resolve_plain("2024-01-01"),
            Scalar::Str("2024-01-01".into())
        );
    }
}
