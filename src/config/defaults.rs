//! Merging `defaults` into each location, as the reference's `DagsterCloudConfigDefaultsMerger`
//! (`dagster_cloud_cli/config/merger.py`) does in `ci template`; we do it on every load.
//!
//! Nulls are dropped on both sides first. The location's values win. Mappings deep-merge.
//! Lists concatenate (defaults first) without duplicates, except at a fixed set of paths:
//! `env_vars` lists merge by the `KEY` of `KEY=value`, the listed lists of named (or keyed)
//! objects merge by `name` (`key`), and container `args`/`command` are replaced. A mapping or
//! list that meets a different type on the defaults side cannot be merged (the reference fails
//! an invariant there). One deliberate difference: the reference fails on a defaults `env_vars`
//! entry with two `=` (`OPTS=--a=b`); we merge it by its key like any other.

use super::diagnostic::{Sink, join};
use super::yaml::{Entry, Node, Value};

enum ListMerge {
    /// Defaults then location items, dropping repeats.
    Deduplicate,
    /// The location's list replaces the default one.
    Replace,
    /// `KEY=value` strings merged by `KEY`.
    ByEnvKey,
    /// Mappings merged by the value of this key.
    ByField(&'static str),
}

/// The reference's exceptions to [`ListMerge::Deduplicate`], by path inside a location.
fn strategy(key_path: &str) -> ListMerge {
    match key_path {
        "container_context.docker.env_vars"
        | "container_context.ecs.env_vars"
        | "container_context.k8s.env_vars" => ListMerge::ByEnvKey,
        "container_context.ecs.run_sidecar_containers"
        | "container_context.ecs.secrets"
        | "container_context.ecs.server_sidecar_containers"
        | "container_context.ecs.volumes"
        | "container_context.k8s.image_pull_secrets"
        | "container_context.k8s.volumes"
        | "container_context.k8s.volume_mounts" => ListMerge::ByField("name"),
        "container_context.ecs.run_ecs_tags" | "container_context.ecs.server_ecs_tags" => {
            ListMerge::ByField("key")
        }
        "container_context.k8s.run_k8s_config.container_config.args"
        | "container_context.k8s.run_k8s_config.container_config.command"
        | "container_context.k8s.server_k8s_config.container_config.args"
        | "container_context.k8s.server_k8s_config.container_config.command" => ListMerge::Replace,
        _ => ListMerge::Deduplicate,
    }
}

/// The location (`path` is e.g. `locations[0]`) with `defaults` merged in, nulls dropped.
/// Both must be mappings.
pub(crate) fn merge(defaults: Option<&Node>, location: &Node, path: &str, sink: &mut Sink) -> Node {
    let location = location.without_nulls();
    match defaults.map(Node::without_nulls) {
        Some(defaults) => Merger { path, sink }.map(&defaults, &location, ""),
        None => location,
    }
}

struct Merger<'s, 'p> {
    path: &'p str,
    sink: &'s mut Sink,
}

impl Merger<'_, '_> {
    fn map(&mut self, defaults: &Node, location: &Node, key_path: &str) -> Node {
        let (Some(onto), Some(from)) = (defaults.as_map(), location.as_map()) else {
            return location.clone();
        };
        let mut entries: Vec<Entry> = Vec::new();
        for entry in from {
            let default = onto.iter().find(|d| d.key.py_eq(&entry.key));
            let value = match default {
                Some(d) => self.value(
                    &d.value,
                    &entry.value,
                    &join(key_path, &entry.key.key_text()),
                ),
                None => entry.value.clone(),
            };
            entries.push(Entry {
                key: entry.key.clone(),
                value,
            });
        }
        for d in onto {
            if !from.iter().any(|e| e.key.py_eq(&d.key)) {
                entries.push(d.clone());
            }
        }
        Node {
            value: Value::Map(entries),
            pos: location.pos,
            plain: None,
        }
    }

    fn value(&mut self, default: &Node, own: &Node, key_path: &str) -> Node {
        match (&default.value, &own.value) {
            (Value::Map(_), Value::Map(_)) => self.map(default, own, key_path),
            (Value::Seq(d), Value::Seq(o)) => self.list(d, own, o, key_path),
            (_, Value::Map(_) | Value::Seq(_)) => {
                // Top-level keys have fixed types, already checked; only nested values of
                // `container_context` can disagree in a file that is otherwise valid.
                if key_path.contains('.') {
                    self.sink.push(
                        own.pos,
                        &join(self.path, key_path),
                        format!(
                            "`{}` is {} here but {} in `defaults.{key_path}`, so they cannot be merged",
                            last(key_path),
                            own.kind(),
                            default.kind()
                        ),
                        "use the same type in both places, or drop one of them",
                    );
                }
                own.clone()
            }
            _ => own.clone(),
        }
    }

    fn list(&mut self, defaults: &[Node], own_node: &Node, own: &[Node], key_path: &str) -> Node {
        let items = match strategy(key_path) {
            ListMerge::Replace => own.to_vec(),
            ListMerge::Deduplicate => {
                let mut items: Vec<Node> = Vec::new();
                for item in defaults.iter().chain(own) {
                    if !items.iter().any(|i| i.py_eq(item)) {
                        items.push(item.clone());
                    }
                }
                items
            }
            ListMerge::ByEnvKey => self.by_env_key(defaults, own, key_path),
            ListMerge::ByField(field) => self.by_field(defaults, own, key_path, field),
        };
        Node {
            value: Value::Seq(items),
            pos: own_node.pos,
            plain: None,
        }
    }

    fn by_env_key(&mut self, defaults: &[Node], own: &[Node], key_path: &str) -> Vec<Node> {
        let mut ok = true;
        for item in defaults.iter().chain(own) {
            if item.as_str().is_none() {
                ok = false;
                self.sink.push(
                    item.pos,
                    &join(self.path, key_path),
                    format!(
                        "entries of `{}` must be strings like `KEY=value` to merge with `defaults`, found {}",
                        last(key_path),
                        item.kind()
                    ),
                    "write the entry as `KEY=value` (or `KEY` to pass the variable through)",
                );
            }
        }
        if !ok {
            return own.to_vec();
        }
        let env_key = |n: &Node| {
            n.as_str()
                .map(|s| s.split('=').next().unwrap_or(s).to_string())
        };
        let own_keys: Vec<Option<String>> = own.iter().map(env_key).collect();
        defaults
            .iter()
            .filter(|d| !own_keys.contains(&env_key(d)))
            .chain(own)
            .cloned()
            .collect()
    }

    fn by_field(
        &mut self,
        defaults: &[Node],
        own: &[Node],
        key_path: &str,
        field: &str,
    ) -> Vec<Node> {
        let mut ok = true;
        for item in defaults.iter().chain(own) {
            let problem = match item.as_map() {
                None => Some(format!(
                    "entries of `{}` must be mappings to merge with `defaults`, found {}",
                    last(key_path),
                    item.kind()
                )),
                Some(_) => match item.get(field) {
                    None => Some(format!(
                        "every entry of `{}` needs a `{field}` to merge with `defaults`",
                        last(key_path)
                    )),
                    Some(id) if matches!(id.value, Value::Seq(_) | Value::Map(_)) => Some(format!(
                        "`{field}` of an entry of `{}` must be a single value, found {}",
                        last(key_path),
                        id.kind()
                    )),
                    Some(_) => None,
                },
            };
            if let Some(message) = problem {
                ok = false;
                self.sink.push(
                    item.pos,
                    &join(self.path, key_path),
                    message,
                    format!("give every entry a `{field}:` so entries of `defaults` and the location can be matched"),
                );
            }
        }
        if !ok {
            return own.to_vec();
        }
        // Python dict semantics: a repeated id keeps its first position and its last value.
        let by_id = |items: &[Node]| -> Vec<Node> {
            let mut out: Vec<Node> = Vec::new();
            for item in items {
                let id = item.get(field);
                match out.iter_mut().find(|o| match (o.get(field), id) {
                    (Some(a), Some(b)) => a.py_eq(b),
                    _ => false,
                }) {
                    Some(existing) => *existing = item.clone(),
                    None => out.push(item.clone()),
                }
            }
            out
        };
        let own_items = by_id(own);
        let mut items: Vec<Node> = by_id(defaults)
            .into_iter()
            .filter(|d| {
                !own_items
                    .iter()
                    .any(|o| match (o.get(field), d.get(field)) {
                        (Some(a), Some(b)) => a.py_eq(b),
                        _ => false,
                    })
            })
            .collect();
        items.extend(own_items);
        items
    }
}

fn last(key_path: &str) -> &str {
    key_path.rsplit('.').next().unwrap_or(key_path)
}
