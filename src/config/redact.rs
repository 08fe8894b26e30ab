//! Values a template read from the environment (`get_env`) may be secrets (a `DATABASE_URL`
//! with its password): they are replaced by `***` in every message about the file.

use std::fmt;

/// Shorter values are left alone: masking `1` or `on` would garble line numbers and words
/// while hiding nothing anyone would call a secret.
const MIN_LEN: usize = 3;

/// The texts to hide, longest first (so a value containing another is hidden whole).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Redactions(Vec<String>);

impl Redactions {
    pub(crate) fn new<I: IntoIterator<Item = String>>(values: I) -> Redactions {
        let mut texts: Vec<String> = Vec::new();
        for value in values {
            // A multi-line value can be quoted one line at a time.
            let pieces = std::iter::once(value.trim()).chain(value.lines().map(str::trim));
            for piece in pieces {
                if piece.chars().count() >= MIN_LEN && !texts.iter().any(|t| t == piece) {
                    texts.push(piece.to_string());
                }
            }
        }
        texts.sort_by_key(|t| std::cmp::Reverse(t.len()));
        Redactions(texts)
    }

    /// `text` with every value replaced by `***`.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.0 {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Never the values themselves.
impl fmt::Debug for Redactions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactions({} values)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_hidden_whole_and_short_ones_kept() {
        let r = Redactions::new([
            "pw".to_string(),
            "postgres://u:secret@h/db".to_string(),
            "secret".to_string(),
            "line one\nline two".to_string(),
        ]);
        assert_eq!(
            r.apply("url postgres://u:secret@h/db and secret, pw at line two"),
            "url *** and ***, pw at ***"
        );
        assert_eq!(format!("{r:?}"), "Redactions(5 values)");
    }
}
