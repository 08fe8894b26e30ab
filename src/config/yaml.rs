//! A YAML tree with a position on every node, built from `saphyr-parser` events.
//!
//! We build the tree ourselves (instead of `saphyr`'s loader) to type scalars as PyYAML does
//! (YAML 1.1, see `scalar.rs`), to apply `<<` merge keys as PyYAML does, and to report every
//! duplicate key rather than stopping at the first.

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

use super::diagnostic::join;
use super::node::size;
pub(crate) use super::node::{Entry, Node, Pos, Value};
use super::pyyaml::{Tagged, is_non_specific, tab_problems, tagged_scalar};
use super::scalar::{self, Scalar};

/// A problem found while building the tree. `path` is the field path of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlProblem {
    pub pos: Pos,
    pub path: String,
    pub message: String,
    pub hint: String,
}

/// The result of reading a YAML text: the document (None when the stream is empty) and the
/// problems found. A syntax error ends parsing; other problems leave a usable tree.
pub(crate) struct Parsed {
    pub root: Option<Node>,
    pub problems: Vec<YamlProblem>,
    /// Parsing stopped at a syntax error (the last problem); `root` is then `None`.
    pub syntax_error: bool,
}

/// Deeper nesting than this is surely not a dagster_cloud.yaml; it keeps recursion bounded.
const MAX_DEPTH: usize = 256;

/// Aliases are copied into the tree; this caps what nested aliases can expand to.
const MAX_ALIAS_NODES: usize = 1_000_000;

pub(crate) fn parse(text: &str) -> Parsed {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        chars: if text.contains(['[', '{']) {
            text.chars().collect()
        } else {
            Vec::new()
        },
        flow_depth: 0,
        anchors: Vec::new(),
        problems: Vec::new(),
        quoted: Vec::new(),
        alias_nodes: 0,
    };
    let (root, syntax_error) = match builder.stream() {
        Ok(root) => (root, false),
        Err(problem) => {
            builder.problems.push(problem);
            (None, true)
        }
    };
    let mut problems = builder.problems;
    if !syntax_error && text.contains('\t') {
        problems.extend(tab_problems(text, &builder.quoted));
    }
    Parsed {
        root,
        problems,
        syntax_error,
    }
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    /// The text as characters (spans index characters), when it has flow collections.
    chars: Vec<char>,
    /// How many flow collections (`[...]`, `{...}`) enclose the current node.
    flow_depth: usize,
    /// Anchored nodes with their size in nodes.
    anchors: Vec<(usize, Node, usize)>,
    problems: Vec<YamlProblem>,
    /// Character ranges of quoted and block scalars (where tabs are fine).
    quoted: Vec<std::ops::Range<usize>>,
    /// Nodes copied by alias expansion so far.
    alias_nodes: usize,
}

type Fatal = YamlProblem;

fn syntax(pos: Pos, info: &str) -> Fatal {
    YamlProblem {
        pos,
        path: String::new(),
        message: format!("invalid YAML: {info}"),
        hint: "fix the YAML syntax at this position".into(),
    }
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), Fatal> {
        match self.parser.next_event() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(err)) => {
                let m = err.marker();
                Err(syntax(
                    Pos {
                        line: m.line(),
                        column: m.col() + 1,
                    },
                    err.info(),
                ))
            }
            None => Err(syntax(Pos::default(), "unexpected end of the stream")),
        }
    }

    fn problem(&mut self, pos: Pos, path: &str, message: String, hint: &str) {
        self.problems.push(YamlProblem {
            pos,
            path: path.to_string(),
            message,
            hint: hint.to_string(),
        });
    }

    fn stream(&mut self) -> Result<Option<Node>, Fatal> {
        let mut root = None;
        let mut documents = 0;
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Ok(root),
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents == 2 {
                        // PyYAML's `load` wants exactly one document.
                        self.problem(
                            pos_of(&span),
                            "",
                            "the file holds more than one YAML document".into(),
                            "keep a single document: remove this `---` and what follows, or \
                             merge it into the first document",
                        );
                    }
                }
                other => {
                    let node = self.node(other, span, "", 0)?;
                    if documents <= 1 {
                        root = Some(node);
                    }
                }
            }
        }
    }

    fn node(
        &mut self,
        event: Event<'a>,
        span: Span,
        path: &str,
        depth: usize,
    ) -> Result<Node, Fatal> {
        let pos = pos_of(&span);
        if depth > MAX_DEPTH {
            return Err(YamlProblem {
                pos,
                path: path.to_string(),
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
                hint: "flatten the structure".into(),
            });
        }
        match event {
            Event::Alias(id) => {
                let Some((_, node, size)) = self.anchors.iter().rev().find(|(a, _, _)| *a == id)
                else {
                    return Err(syntax(pos, "unknown anchor"));
                };
                self.alias_nodes += size;
                if self.alias_nodes > MAX_ALIAS_NODES {
                    return Err(YamlProblem {
                        pos,
                        path: path.to_string(),
                        message: format!("aliases expand to more than {MAX_ALIAS_NODES} values"),
                        hint: "use fewer nested aliases".into(),
                    });
                }
                let mut node = node.clone();
                node.pos = pos;
                Ok(node)
            }
            Event::Scalar(text, style, anchor, tag) => {
                if style != ScalarStyle::Plain {
                    self.quoted.push(span.start.index()..span.end.index());
                }
                let node = self.scalar(&text, style, tag.as_deref(), pos, path);
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::SequenceStart(anchor, tag) => {
                self.check_collection_tag(tag.as_deref(), "seq", pos, path);
                let flow = self.starts_flow(&span);
                self.flow_depth += usize::from(flow);
                let mut items = Vec::new();
                loop {
                    let (ev, sp) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    let item_path = format!("{path}[{}]", items.len());
                    items.push(self.node(ev, sp, &item_path, depth + 1)?);
                }
                self.flow_depth -= usize::from(flow);
                let node = Node {
                    value: Value::Seq(items),
                    pos,
                    plain: None,
                };
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::MappingStart(anchor, tag) => {
                self.check_collection_tag(tag.as_deref(), "map", pos, path);
                let flow = self.starts_flow(&span);
                self.flow_depth += usize::from(flow);
                let node = self.mapping(pos, path, depth)?;
                self.flow_depth -= usize::from(flow);
                self.remember(anchor, &node);
                Ok(node)
            }
            _ => Err(syntax(pos, "unexpected YAML event")),
        }
    }

    /// Whether a collection starting at `span` is written in flow style.
    fn starts_flow(&self, span: &Span) -> bool {
        // The span may start at a tag or an anchor (`!!seq [a]`, `&x {a: 1}`): skip them.
        let mut rest = self.chars.iter().skip(span.start.index()).peekable();
        while let Some(&&c) = rest.peek() {
            match c {
                '!' | '&' => while rest.next_if(|c| !c.is_whitespace()).is_some() {},
                c if c.is_whitespace() => {
                    rest.next();
                }
                _ => break,
            }
        }
        matches!(rest.peek(), Some('[' | '{'))
    }

    /// PyYAML (YAML 1.1) ends an unquoted scalar at `?` inside `[...]`/`{...}` and cannot
    /// start one with `:`, `>` or `|` there; YAML 1.2 allows these (e.g.
    /// `{url: https://x/a?b=c}`).
    fn check_flow_plain(&mut self, text: &str, pos: Pos, path: &str) {
        if self.flow_depth > 0 && (text.contains('?') || text.starts_with([':', '>', '|'])) {
            self.problem(
                pos,
                path,
                format!("`{text}` must be quoted inside `[...]` or `{{...}}`"),
                &format!("quote it: `\"{text}\"` (YAML 1.1, as dagster-cloud reads it, does not allow `?` or a leading `:`, `>` or `|` in unquoted values there)"),
            );
        }
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor > 0 {
            self.anchors.push((anchor, node.clone(), size(node)));
        }
    }

    fn mapping(&mut self, pos: Pos, path: &str, depth: usize) -> Result<Node, Fatal> {
        let mut explicit: Vec<Entry> = Vec::new();
        let mut merged: Vec<Entry> = Vec::new();
        loop {
            let (ev, sp) = self.next()?;
            if matches!(ev, Event::MappingEnd) {
                break;
            }
            if matches!(&ev, Event::Scalar(t, ScalarStyle::Plain, _, None) if t == "<<") {
                let key_path = join(path, "<<");
                let (vev, vsp) = self.next()?;
                let value = self.node(vev, vsp, &key_path, depth + 1)?;
                self.merge_into(&mut merged, value, &key_path);
                continue;
            }
            // PyYAML turns a plain `=` key into the string "=" (it is an error only as a value).
            let key = if matches!(&ev, Event::Scalar(t, ScalarStyle::Plain, _, None) if t == "=") {
                Node {
                    value: Value::Str("=".into()),
                    pos: pos_of(&sp),
                    plain: Some("=".into()),
                }
            } else {
                self.node(ev, sp, path, depth + 1)?
            };
            let key_path = join(path, &key.key_text());
            let (vev, vsp) = self.next()?;
            let value = self.node(vev, vsp, &key_path, depth + 1)?;
            if matches!(key.value, Value::Seq(_) | Value::Map(_)) {
                self.problem(
                    key.pos,
                    path,
                    "a list or mapping cannot be a mapping key".into(),
                    "use a plain string as the key",
                );
                continue;
            }
            if let Some(first) = explicit.iter().find(|e| e.key.py_eq(&key)) {
                let message = format!(
                    "duplicate key `{}` (first defined at line {})",
                    key.key_text(),
                    first.key.pos.line
                );
                self.problem(
                    key.pos,
                    &key_path,
                    message,
                    "remove one of them (dagster-cloud would silently keep the last one)",
                );
                continue;
            }
            explicit.push(Entry { key, value });
        }
        // As PyYAML: merged keys come first, explicit keys override them.
        let mut entries: Vec<Entry> = Vec::new();
        for entry in merged.into_iter().chain(explicit) {
            match entries.iter_mut().find(|e| e.key.py_eq(&entry.key)) {
                Some(existing) => existing.value = entry.value,
                None => entries.push(entry),
            }
        }
        Ok(Node {
            value: Value::Map(entries),
            pos,
            plain: None,
        })
    }

    /// Applies a `<<` value: a mapping, or a list of mappings where earlier ones win.
    fn merge_into(&mut self, merged: &mut Vec<Entry>, value: Node, path: &str) {
        let sources: Vec<Node> = match value.value {
            Value::Map(_) => vec![value],
            Value::Seq(items) => items.into_iter().rev().collect(),
            _ => vec![value],
        };
        for source in sources {
            match source.value {
                Value::Map(entries) => merged.extend(entries),
                _ => self.problem(
                    source.pos,
                    path,
                    format!("`<<` needs a mapping to merge, found {}", source.kind()),
                    "merge a mapping (e.g. `<<: *anchor`) or a list of mappings",
                ),
            }
        }
    }

    fn check_collection_tag(&mut self, tag: Option<&Tag>, expected: &str, pos: Pos, path: &str) {
        let Some(tag) = tag else { return };
        let ok = (tag.is_yaml_core_schema() && tag.suffix == expected) || (is_non_specific(tag));
        if !ok {
            self.unsupported_tag(tag, pos, path);
        }
    }

    fn unsupported_tag(&mut self, tag: &Tag, pos: Pos, path: &str) {
        let shown = if tag.is_yaml_core_schema() {
            format!("!!{}", tag.suffix)
        } else {
            tag.to_string()
        };
        self.problem(
            pos,
            path,
            format!("unsupported YAML tag `{shown}`"),
            "remove the tag: values here are strings, numbers, booleans, lists or mappings",
        );
    }

    fn scalar(
        &mut self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&Tag>,
        pos: Pos,
        path: &str,
    ) -> Node {
        let node = |value| Node {
            value,
            pos,
            plain: None,
        };
        // PyYAML resolves a scalar tagged `!` as if it had no tag.
        if let Some(tag) = tag.filter(|t| !is_non_specific(t)) {
            return match tagged_scalar(text, tag) {
                Tagged::Value(value) => node(value),
                Tagged::Invalid(suffix) => {
                    self.problem(
                        pos,
                        path,
                        format!("`{text}` is not a valid `!!{suffix}` value"),
                        "fix the value or remove the tag",
                    );
                    node(Value::Str(text.to_string()))
                }
                Tagged::Unsupported => {
                    self.unsupported_tag(tag, pos, path);
                    node(Value::Str(text.to_string()))
                }
            };
        }
        if style != ScalarStyle::Plain {
            return node(Value::Str(text.to_string()));
        }
        self.check_flow_plain(text, pos, path);
        let value = match scalar::resolve_plain(text) {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(b),
            Scalar::Int(i) => Value::Int(i),
            Scalar::Float(f) => Value::Float(f),
            Scalar::Str(s) => Value::Str(s),
            // A merge key outside key position is just the text `<<` for our purposes;
            // PyYAML fails to construct it, so report it like `=`.
            Scalar::Merge | Scalar::ValueTag => {
                self.problem(
                    pos,
                    path,
                    format!("`{text}` is not a valid plain value in YAML 1.1"),
                    &format!("quote it: `\"{text}\"`"),
                );
                Value::Str(text.to_string())
            }
        };
        Node {
            value,
            pos,
            plain: Some(text.to_string()),
        }
    }
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        let parsed = parse(text);
        assert_eq!(parsed.problems, vec![], "{text}");
        parsed.root.expect("a document")
    }

    #[test]
    fn positions_are_one_based() {
        let node = root("locations:\n  - location_name: a\n    image: x\n");
        assert_eq!(node.pos, Pos { line: 1, column: 1 });
        let locations = node.get("locations").unwrap();
        assert_eq!(locations.pos, Pos { line: 2, column: 3 });
        let Value::Seq(items) = &locations.value else {
            panic!("not a list")
        };
        assert_eq!(items[0].pos, Pos { line: 2, column: 5 });
        let image = items[0].get("image").unwrap();
        assert_eq!(
            image.pos,
            Pos {
                line: 3,
                column: 12
            }
        );
        assert_eq!(image.as_str(), Some("x"));
    }

    #[test]
    fn scalars_typed_as_pyyaml() {
        let node = root(
            "a: on\nb: '5'\nc: 5\nd: 1.0\ne: ~\nf:\ng: !!str 5\nh: \"yes\"\ni: |\n  x\nj: ! 5\nk: ! [1]\n",
        );
        let kind = |k: &str| node.get(k).unwrap().kind();
        assert_eq!(kind("a"), "a boolean");
        assert_eq!(kind("b"), "a string");
        assert_eq!(kind("c"), "an integer");
        assert_eq!(kind("d"), "a float");
        assert_eq!(kind("e"), "null");
        assert_eq!(kind("f"), "null");
        assert_eq!(kind("g"), "a string");
        assert_eq!(kind("h"), "a string");
        assert_eq!(node.get("i").unwrap().as_str(), Some("x\n"));
        assert_eq!(kind("j"), "an integer");
        assert_eq!(kind("k"), "a list");
    }

    #[test]
    fn every_duplicate_key_is_reported() {
        let parsed = parse("a: 1\nb: 2\na: 3\nb: 4\n");
        let messages: Vec<_> = parsed
            .problems
            .iter()
            .map(|p| (p.pos.line, p.path.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(
            messages,
            vec![
                (3, "a", "duplicate key `a` (first defined at line 1)"),
                (4, "b", "duplicate key `b` (first defined at line 2)"),
            ]
        );
    }

    #[test]
    fn merge_keys_and_aliases() {
        let node = root("base: &b {image: i, agent_queue: q}\nloc:\n  <<: *b\n  image: own\n");
        let loc = node.get("loc").unwrap();
        assert_eq!(loc.get("image").unwrap().as_str(), Some("own"));
        assert_eq!(loc.get("agent_queue").unwrap().as_str(), Some("q"));
        // Earlier mappings in a merge list win over later ones.
        let node = root("x: &x {a: 1}\ny: &y {a: 2, b: 3}\nz:\n  <<: [*x, *y]\n");
        let z = node.get("z").unwrap();
        assert!(matches!(z.get("a").unwrap().value, Value::Int(1)));
        assert!(matches!(z.get("b").unwrap().value, Value::Int(3)));
    }

    #[test]
    fn syntax_error_has_a_position() {
        let parsed = parse("locations:\n  - a: [1, 2\n");
        assert!(parsed.root.is_none());
        assert_eq!(parsed.problems.len(), 1);
        assert!(parsed.problems[0].message.starts_with("invalid YAML: "));
        assert!(parsed.problems[0].pos.line >= 2);
    }

    #[test]
    fn unsupported_tags_and_second_documents() {
        let parsed = parse("a: !foo x\nb: !!set {x}\n---\nc: 1\n");
        let messages: Vec<_> = parsed.problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            vec![
                "unsupported YAML tag `!foo`",
                "unsupported YAML tag `!!set`",
                "the file holds more than one YAML document",
            ]
        );
    }

    #[test]
    fn nesting_and_alias_expansion_are_bounded() {
        // saphyr caps flow nesting itself; block nesting is capped by us.
        let parsed = parse(&("[".repeat(10_000) + &"]".repeat(10_000)));
        assert!(parsed.syntax_error);
        let parsed = parse(&("- ".repeat(5_000) + "x\n"));
        assert!(parsed.syntax_error);
        assert_eq!(parsed.problems[0].message, "nesting deeper than 256 levels");

        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (i, name) in ["b", "c", "d", "e", "f", "g", "h"].iter().enumerate() {
            let previous = ["a", "b", "c", "d", "e", "f", "g"][i];
            let items = vec![format!("*{previous}"); 10].join(", ");
            bomb.push_str(&format!("{name}: &{name} [{items}]\n"));
        }
        let parsed = parse(&bomb);
        assert!(parsed.syntax_error);
        assert_eq!(
            parsed.problems[0].message,
            "aliases expand to more than 1000000 values"
        );
    }

    #[test]
    fn plain_equals_is_a_string_key_but_no_value() {
        let parsed = parse("=: x\n");
        assert_eq!(parsed.problems, vec![]);
        assert_eq!(parsed.root.unwrap().get("=").unwrap().as_str(), Some("x"));
        let parsed = parse("x: =\n");
        assert_eq!(
            parsed.problems[0].message,
            "`=` is not a valid plain value in YAML 1.1"
        );
    }

    #[test]
    fn flow_plain_scalars_follow_yaml_1_1() {
        for text in [
            "a: {url: https://x/a?b=c}\n",
            "a: [x?]\n",
            "a: [:x]\n",
            "a: [>x]\n",
            "a: [|x]\n",
        ] {
            let problems = parse(text).problems;
            assert_eq!(problems.len(), 1, "{text:?}");
        }
        let problems = parse("a: {url: https://x/a?b=c}\n").problems;
        assert_eq!(
            problems[0].pos,
            Pos {
                line: 1,
                column: 10
            }
        );
        assert_eq!(problems[0].path, "a.url");
        assert_eq!(
            problems[0].message,
            "`https://x/a?b=c` must be quoted inside `[...]` or `{...}`"
        );
        for text in [
            "a: [x:y]\n",
            "a: {k: a:b}\n",
            "a: x?y\n",
            "a: [\"x?\"]\n",
            "a:\n  - x?\n",
        ] {
            assert_eq!(parse(text).problems, vec![], "{text:?}");
        }
    }

    #[test]
    fn empty_stream_has_no_document() {
        let parsed = parse("# only a comment\n");
        assert!(parsed.root.is_none());
        assert!(parsed.problems.is_empty());
    }
}
