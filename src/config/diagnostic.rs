//! Collecting diagnostics, plus the small text helpers their messages share.

use std::path::{Path, PathBuf};

use super::Diagnostic;
use super::yaml::Pos;

/// Collects the diagnostics of one file.
pub(crate) struct Sink {
    file: PathBuf,
    /// Appended to every hint: says when positions refer to the rendered template.
    note: Option<&'static str>,
    pub items: Vec<Diagnostic>,
}

impl Sink {
    pub fn new(file: &Path) -> Sink {
        Sink {
            file: file.to_path_buf(),
            note: None,
            items: Vec::new(),
        }
    }

    pub fn with_note(mut self, note: Option<&'static str>) -> Sink {
        self.note = note;
        self
    }

    pub fn push(
        &mut self,
        pos: Pos,
        field: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let mut hint = hint.into();
        if let Some(note) = self.note {
            hint.push_str(note);
        }
        self.items.push(Diagnostic {
            file: self.file.clone(),
            line: pos.line.max(1),
            column: pos.column.max(1),
            field: field.to_string(),
            message: message.into(),
            hint,
        });
    }
}

/// Sorts diagnostics by file, line and column (stable, so same-position ones keep their order).
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
}

/// `a.b` or `b` when the parent is the root.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `` `a`, `b`, `c` ``
pub(crate) fn code_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The hint for an unknown key: the closest allowed key when one is near, else all of them.
pub(crate) fn unknown_key_hint(key: &str, allowed: &[&str]) -> String {
    match closest(key, allowed) {
        Some(best) => format!("did you mean `{best}`?"),
        None => format!("allowed keys here: {}", code_list(allowed)),
    }
}

/// The candidate within a small edit distance of `word` (typos, not different words).
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance where swapping two neighbours counts once (`imgae` is one step from `image`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// Converts a byte offset in `text` into a 1-based line and character column.
pub(crate) fn pos_at(text: &str, offset: usize) -> Pos {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Pos {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let allowed = ["location_name", "code_source", "image"];
        assert_eq!(closest("location_nme", &allowed), Some("location_name"));
        assert_eq!(closest("imag", &allowed), Some("image"));
        assert_eq!(closest("imgae", &allowed), Some("image"));
        assert_eq!(closest("registry", &allowed), None);
        assert_eq!(
            unknown_key_hint("foo", &["a", "b"]),
            "allowed keys here: `a`, `b`"
        );
    }

    #[test]
    fn byte_offsets_become_positions() {
        let text = "ab\nçd\n";
        assert_eq!(pos_at(text, 0), Pos { line: 1, column: 1 });
        assert_eq!(pos_at(text, 3), Pos { line: 2, column: 1 });
        // `ç` is two bytes but one column.
        assert_eq!(pos_at(text, 5), Pos { line: 2, column: 2 });
        assert_eq!(pos_at(text, 100), Pos { line: 3, column: 1 });
    }
}
