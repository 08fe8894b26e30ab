//! `dagster-deploy.toml`: our own per-location build settings, beside `dagster_cloud.yaml`.
//!
//! ```toml
//! [defaults]
//! ignore = ["**/*.md"]
//! [locations.etl]
//! context = "etl"            # Docker context when not build.directory
//! watch = ["shared/"]
//! secrets = ["id=pypi,env=PYPI_TOKEN"]
//! build_args = { PIP_INDEX_URL = "https://..." }
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::{Sink, closest, code_list, join, pos_at, unknown_key_hint};
use super::{LocationSettings, Settings};

const TOP_KEYS: &[&str] = &["defaults", "locations"];
const FIELDS: &[&str] = &[
    "watch",
    "ignore",
    "context",
    "dockerfile",
    "build_args",
    "target",
    "platform",
    "python_version",
    "base_image",
    "secrets",
];

impl Settings {
    /// The effective settings of one location: its own over `[defaults]`. `watch` and
    /// `ignore` add to the defaults (without repeats), `build_args` merge by name (the
    /// location's value wins), every other option replaces the default.
    pub fn for_location(&self, name: &str) -> LocationSettings {
        let base = &self.defaults;
        let Some(own) = self.locations.get(name) else {
            return base.clone();
        };
        let concat = |a: &[String], b: &[String]| {
            let mut out: Vec<String> = Vec::new();
            for item in a.iter().chain(b) {
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
            out
        };
        let mut build_args = base.build_args.clone();
        build_args.extend(own.build_args.clone());
        LocationSettings {
            watch: concat(&base.watch, &own.watch),
            ignore: concat(&base.ignore, &own.ignore),
            context: own.context.clone().or_else(|| base.context.clone()),
            dockerfile: own.dockerfile.clone().or_else(|| base.dockerfile.clone()),
            build_args,
            target: own.target.clone().or_else(|| base.target.clone()),
            platform: own.platform.clone().or_else(|| base.platform.clone()),
            python_version: own
                .python_version
                .clone()
                .or_else(|| base.python_version.clone()),
            base_image: own.base_image.clone().or_else(|| base.base_image.clone()),
            secrets: concat(&base.secrets, &own.secrets),
        }
    }
}

impl Settings {
    /// Where the value `value` of `field` (`watch`, `dockerfile`, ...) that location `name`
    /// uses was written: its field path and 1-based line and column (its own table first,
    /// then `[defaults]`). `None` when it was not read from the file.
    pub fn origin(&self, name: &str, field: &str, value: &str) -> Option<(String, usize, usize)> {
        let found = |path: String, table: &LocationSettings| -> Option<String> {
            match field {
                "watch" | "ignore" => {
                    let list = if field == "watch" {
                        &table.watch
                    } else {
                        &table.ignore
                    };
                    let index = list.iter().position(|v| v == value)?;
                    Some(format!("{path}.{field}[{index}]"))
                }
                _ => Some(format!("{path}.{field}")),
            }
        };
        let own = self
            .locations
            .get(name)
            .and_then(|t| found(format!("locations.{name}"), t));
        own.into_iter()
            .chain(found("defaults".into(), &self.defaults))
            .find_map(|path| {
                let (line, column) = *self.positions.get(&path)?;
                Some((path, line, column))
            })
    }
}

/// Parses the settings text. `names` are the locations of the yaml (`None` when the yaml could
/// not be read far enough to know them: then `[locations.X]` names are not checked).
pub(crate) fn parse(text: &str, names: Option<&[String]>, sink: &mut Sink) -> Settings {
    let mut settings = Settings::default();
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for err in errors {
            let pos = pos_at(text, err.span().map_or(0, |s| s.start));
            sink.push(
                pos,
                "",
                format!("invalid TOML: {}", err.message().trim_end()),
                "fix the TOML syntax at this position",
            );
        }
        return settings;
    }
    let reader = Reader {
        text,
        positions: RefCell::default(),
    };
    for (key, value) in root.get_ref() {
        let key_name = key.get_ref().as_ref();
        match key_name {
            "defaults" => {
                if let Some(table) = reader.table(value, "defaults", sink) {
                    settings.defaults = reader.location(table, "defaults", sink);
                }
            }
            "locations" => {
                let Some(table) = reader.table(value, "locations", sink) else {
                    continue;
                };
                for (name, value) in table {
                    let name_text = name.get_ref().as_ref();
                    let path = format!("locations.{name_text}");
                    if let Some(names) = names
                        && !names.iter().any(|n| n == name_text)
                    {
                        let known: Vec<&str> = names.iter().map(String::as_str).collect();
                        let hint = match closest(name_text, &known) {
                            Some(best) => format!("did you mean `{best}`?"),
                            None if known.is_empty() => {
                                "dagster_cloud.yaml defines no locations".into()
                            }
                            None => {
                                format!("locations in dagster_cloud.yaml: {}", code_list(&known))
                            }
                        };
                        sink.push(
                            reader.pos(name.span()),
                            &path,
                            format!(
                                "`[locations.{name_text}]` names no location of dagster_cloud.yaml"
                            ),
                            hint,
                        );
                    }
                    if let Some(table) = reader.table(value, &path, sink) {
                        let parsed = reader.location(table, &path, sink);
                        settings.locations.insert(name_text.to_string(), parsed);
                    }
                }
            }
            other => sink.push(
                reader.pos(key.span()),
                other,
                format!("unknown key `{other}`"),
                unknown_key_hint(other, TOP_KEYS),
            ),
        }
    }
    settings.positions = reader.positions.into_inner();
    settings
}

struct Reader<'t> {
    text: &'t str,
    /// Positions of the values read, by field path.
    positions: RefCell<BTreeMap<String, (usize, usize)>>,
}

impl Reader<'_> {
    fn pos(&self, span: Range<usize>) -> super::yaml::Pos {
        pos_at(self.text, span.start)
    }

    fn remember(&self, field: &str, span: Range<usize>) {
        let pos = self.pos(span);
        self.positions
            .borrow_mut()
            .insert(field.to_string(), (pos.line, pos.column));
    }

    fn table<'v, 'i>(
        &self,
        value: &'v Spanned<DeValue<'i>>,
        path: &str,
        sink: &mut Sink,
    ) -> Option<&'v DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(table) => Some(table),
            other => {
                sink.push(
                    self.pos(value.span()),
                    path,
                    format!("`{path}` must be a table, found {}", describe(other)),
                    format!("write it as a `[{path}]` table"),
                );
                None
            }
        }
    }

    fn location(&self, table: &DeTable, path: &str, sink: &mut Sink) -> LocationSettings {
        let mut out = LocationSettings::default();
        for (key, value) in table {
            let key_name = key.get_ref().as_ref();
            let field = join(path, key_name);
            match key_name {
                "watch" => out.watch = self.strings(value, &field, Entries::Paths, sink),
                "ignore" => out.ignore = self.strings(value, &field, Entries::Globs, sink),
                "build_args" => out.build_args = self.build_args(value, &field, sink),
                "context" => out.context = self.string(value, &field, sink),
                "dockerfile" => out.dockerfile = self.string(value, &field, sink),
                "target" => out.target = self.string(value, &field, sink),
                "platform" => out.platform = self.string(value, &field, sink),
                "python_version" => out.python_version = self.string(value, &field, sink),
                "base_image" => out.base_image = self.string(value, &field, sink),
                "secrets" => out.secrets = self.strings(value, &field, Entries::Secrets, sink),
                other => sink.push(
                    self.pos(key.span()),
                    &field,
                    format!("unknown key `{other}`"),
                    unknown_key_hint(other, FIELDS),
                ),
            }
        }
        out
    }

    fn string(&self, value: &Spanned<DeValue>, field: &str, sink: &mut Sink) -> Option<String> {
        match value.get_ref() {
            DeValue::String(s) => {
                self.remember(field, value.span());
                Some(s.to_string())
            }
            other => {
                let name = field.rsplit('.').next().unwrap_or(field);
                sink.push(
                    self.pos(value.span()),
                    field,
                    format!("`{name}` must be a string, found {}", describe(other)),
                    quote_hint(name, other),
                );
                None
            }
        }
    }

    fn strings(
        &self,
        value: &Spanned<DeValue>,
        field: &str,
        entries: Entries,
        sink: &mut Sink,
    ) -> Vec<String> {
        let name = field.rsplit('.').next().unwrap_or(field);
        let DeValue::Array(items) = value.get_ref() else {
            sink.push(
                self.pos(value.span()),
                field,
                format!(
                    "`{name}` must be a list of strings, found {}",
                    describe(value.get_ref())
                ),
                format!(
                    "write it as a list, e.g. `{name} = [{}]`",
                    entries.example()
                ),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let item_field = format!("{field}[{index}]");
            let DeValue::String(s) = item.get_ref() else {
                sink.push(
                    self.pos(item.span()),
                    &item_field,
                    format!(
                        "entries of `{name}` must be strings, found {}",
                        describe(item.get_ref())
                    ),
                    "quote the entry",
                );
                continue;
            };
            if let Err((message, hint)) = entries.check(s) {
                sink.push(self.pos(item.span()), &item_field, message, hint);
                continue;
            }
            self.remember(&item_field, item.span());
            out.push(s.to_string());
        }
        out
    }

    fn build_args(
        &self,
        value: &Spanned<DeValue>,
        field: &str,
        sink: &mut Sink,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let DeValue::Table(table) = value.get_ref() else {
            sink.push(
                self.pos(value.span()),
                field,
                format!(
                    "`build_args` must be a table, found {}",
                    describe(value.get_ref())
                ),
                "write it as `build_args = { NAME = \"value\" }`",
            );
            return out;
        };
        for (key, item) in table {
            let key_name = key.get_ref().as_ref();
            match item.get_ref() {
                DeValue::String(s) => {
                    out.insert(key_name.to_string(), s.to_string());
                }
                other => sink.push(
                    self.pos(item.span()),
                    &join(field, key_name),
                    format!(
                        "build argument `{key_name}` must be a string, found {}",
                        describe(other)
                    ),
                    quote_hint(key_name, other),
                ),
            }
        }
        out
    }
}

/// What the entries of a list setting must be, beyond strings.
#[derive(Clone, Copy)]
enum Entries {
    Paths,
    Globs,
    /// `--secret` values.
    Secrets,
}

impl Entries {
    fn example(self) -> &'static str {
        match self {
            Entries::Paths | Entries::Globs => "\"docs/**\"",
            Entries::Secrets => "\"id=pypi,env=PYPI_TOKEN\"",
        }
    }

    /// The problem and its fix when `text` is no valid entry.
    fn check(self, text: &str) -> Result<(), (String, &'static str)> {
        match self {
            Entries::Paths => Ok(()),
            Entries::Globs => globset::Glob::new(text).map(drop).map_err(|err| {
                (
                    format!("invalid glob `{text}`: {}", err.kind()),
                    "fix the pattern (globs use `*`, `**`, `?`, `[...]` and `{a,b}`)",
                )
            }),
            Entries::Secrets => crate::build::secrets::SecretSpec::parse(text)
                .map(drop)
                .map_err(|problem| {
                    (
                        format!("invalid secret `{text}`: {problem}"),
                        "write `id=ID,env=VAR` (an environment variable) or `id=ID,src=FILE` \
                         (a file), as for `docker buildx build --secret`",
                    )
                }),
        }
    }
}

fn describe(value: &DeValue) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn quote_hint(name: &str, value: &DeValue) -> String {
    let raw = match value {
        DeValue::Integer(i) => Some(i.as_str().to_string()),
        DeValue::Float(f) => Some(f.as_str().to_string()),
        DeValue::Boolean(b) => Some(b.to_string()),
        _ => None,
    };
    match raw {
        Some(raw) => format!("quote the value: `{name} = \"{raw}\"`"),
        None => "write a string value".into(),
    }
}
