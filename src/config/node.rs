//! The YAML tree: every node carries its position, scalars are typed as PyYAML types them.

/// 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub value: Value,
    pub pos: Pos,
    /// The source text of an untagged plain scalar (used in hints such as "quote `on`").
    pub plain: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: Node,
    pub value: Node,
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|e| e.key.as_str() == Some(key))
            .map(|e| &e.value)
    }

    /// "a string", "an integer", ... for messages.
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// How a key is shown in messages: its text.
    pub fn key_text(&self) -> String {
        match (&self.value, &self.plain) {
            (Value::Str(s), _) => s.clone(),
            (_, Some(raw)) => raw.clone(),
            (Value::Null, None) => "null".into(),
            (Value::Bool(b), None) => b.to_string(),
            (Value::Int(i), None) => i.to_string(),
            (Value::Float(f), None) => f.to_string(),
            (Value::Seq(_), None) => "[...]".into(),
            (Value::Map(_), None) => "{...}".into(),
        }
    }

    /// Python truthiness (the reference's `code_source` check counts truthy values).
    pub fn is_truthy(&self) -> bool {
        match &self.value {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Seq(items) => !items.is_empty(),
            Value::Map(entries) => !entries.is_empty(),
        }
    }

    /// Python equality: `1 == 1.0 == True`, mappings compare without order.
    pub fn py_eq(&self, other: &Node) -> bool {
        match (&self.value, &other.value) {
            (Value::Null, Value::Null) => true,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Seq(a), Value::Seq(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.py_eq(y))
            }
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len()
                    && a.iter().all(|ea| {
                        b.iter()
                            .any(|eb| ea.key.py_eq(&eb.key) && ea.value.py_eq(&eb.value))
                    })
            }
            _ => match (self.number(), other.number()) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            },
        }
    }

    fn number(&self) -> Option<f64> {
        match self.value {
            Value::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }

    /// Drops null mapping values and null list items, recursively (the reference's
    /// `remove_none_recursively`).
    pub fn without_nulls(&self) -> Node {
        let value = match &self.value {
            Value::Seq(items) => Value::Seq(
                items
                    .iter()
                    .filter(|n| !matches!(n.value, Value::Null))
                    .map(Node::without_nulls)
                    .collect(),
            ),
            Value::Map(entries) => Value::Map(
                entries
                    .iter()
                    .filter(|e| {
                        !matches!(e.value.value, Value::Null) && !matches!(e.key.value, Value::Null)
                    })
                    .map(|e| Entry {
                        key: e.key.clone(),
                        value: e.value.without_nulls(),
                    })
                    .collect(),
            ),
            other => other.clone(),
        };
        Node {
            value,
            pos: self.pos,
            plain: self.plain.clone(),
        }
    }
}

/// The number of nodes in a tree.
pub(crate) fn size(node: &Node) -> usize {
    1 + match &node.value {
        Value::Seq(items) => items.iter().map(size).sum(),
        Value::Map(entries) => entries.iter().map(|e| size(&e.key) + size(&e.value)).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::yaml::parse;

    use super::*;

    #[test]
    fn python_equality() {
        let node = parse("a: [1, 1.0, true, '1', {x: 1, y: 2}, {y: 2, x: 1}]\n")
            .root
            .unwrap();
        let Value::Seq(items) = &node.get("a").unwrap().value else {
            panic!()
        };
        assert!(items[0].py_eq(&items[1]));
        assert!(items[0].py_eq(&items[2]));
        assert!(!items[0].py_eq(&items[3]));
        assert!(items[4].py_eq(&items[5]));
    }
}
