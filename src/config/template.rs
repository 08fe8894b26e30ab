//! Rendering `dagster_cloud.yaml` as a Jinja template, as the reference's `ci template` does
//! (`JinjaTemplateLoader`): Jinja defaults (no auto-escaping, undefined names render empty,
//! one trailing newline dropped) plus `get_env(name, default="")` and a `to_yaml` filter.
//!
//! minijinja is not Jinja2; `jinja2.rs` closes most of the gap (Python methods, filters,
//! how values print).
//!
//! The environment comes from the injected [`Env`] callback. minijinja functions must be
//! `'static`, so the callback cannot be captured: instead each pass records the names it had no
//! answer for, we look those up and render again, until a pass asks for nothing new.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use minijinja::value::{Kwargs, Value};
use minijinja::{AutoEscape, Environment, Error};

use super::Env;
use super::diagnostic::pos_at;
use super::jinja2;
use super::to_yaml::to_yaml;
use super::yaml::Pos;

/// A rendered template and the values it read from the environment (to keep out of
/// messages).
#[derive(Debug)]
pub(crate) struct Rendered {
    pub text: String,
    pub from_env: Vec<String>,
}

/// A template that could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateError {
    pub pos: Pos,
    pub message: String,
}

/// Whether `text` has any Jinja syntax. Text without it renders to itself (bar a trailing
/// newline), so we skip rendering and positions stay exact.
pub(crate) fn has_template_syntax(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// Each pass learns at least one new name, so this only bounds pathological templates.
const MAX_PASSES: usize = 64;

type Known = Arc<Mutex<BTreeMap<String, Option<String>>>>;
type Missing = Arc<Mutex<BTreeSet<String>>>;

/// Renders `source`. The error, too, carries the values read so far (its message may quote
/// them).
pub(crate) fn render(source: &str, env: Env) -> Result<Rendered, (TemplateError, Vec<String>)> {
    let known: Known = Arc::default();
    let missing: Missing = Arc::default();
    let from_env = |known: &Known| -> Vec<String> {
        let known = known.lock().unwrap_or_else(PoisonError::into_inner);
        known.values().flatten().cloned().collect()
    };
    for _ in 0..MAX_PASSES {
        let jinja = environment(known.clone(), missing.clone());
        let result = jinja.render_str(source, ());
        let wanted = std::mem::take(&mut *missing.lock().unwrap_or_else(PoisonError::into_inner));
        // A pass that met unread names rendered their defaults, which may fail where the real
        // values would not (`get_env("PORT") | int`): read them and render again first.
        if wanted.is_empty() {
            return match result {
                Ok(text) => Ok(Rendered {
                    text,
                    from_env: from_env(&known),
                }),
                Err(err) => Err((template_error(source, &err), from_env(&known))),
            };
        }
        let mut known = known.lock().unwrap_or_else(PoisonError::into_inner);
        for name in wanted {
            let value = env(&name);
            known.insert(name, value);
        }
    }
    Err((
        TemplateError {
            pos: Pos { line: 1, column: 1 },
            message: "template error: too many distinct `get_env` names".into(),
        },
        from_env(&known),
    ))
}

fn environment(known: Known, missing: Missing) -> Environment<'static> {
    let mut jinja = Environment::new();
    jinja.set_auto_escape_callback(|_| AutoEscape::None);
    jinja2::add_to(&mut jinja);
    jinja.add_function(
        "get_env",
        move |name: String, default: Option<Value>, kwargs: Kwargs| -> Result<Value, Error> {
            let default = match default {
                Some(value) => value,
                None => kwargs
                    .get::<Option<Value>>("default")?
                    .unwrap_or(Value::from("")),
            };
            kwargs.assert_all_used()?;
            let answer = known
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&name)
                .cloned();
            Ok(match answer {
                Some(Some(value)) => Value::from(value),
                Some(None) => default,
                None => {
                    missing
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(name);
                    default
                }
            })
        },
    );
    jinja.add_filter("to_yaml", |value: Value| -> Result<String, Error> {
        to_yaml(&value)
    });
    jinja
}

fn template_error(source: &str, err: &Error) -> TemplateError {
    let pos = match (err.range(), err.line()) {
        (Some(range), _) => pos_at(source, range.start),
        (None, Some(line)) => Pos { line, column: 1 },
        (None, None) => Pos { line: 1, column: 1 },
    };
    let message = match err.detail() {
        Some(detail) => format!("template error: {}: {detail}", err.kind()),
        None => format!("template error: {}", err.kind()),
    };
    TemplateError { pos, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn get_env_uses_the_injected_environment_and_defaults() {
        let env = env_of(&[("REGISTRY", "example.com/r"), ("EMPTY", "")]);
        let out = render(
            "a: {{ get_env('REGISTRY', 'x') }}\nb: {{ get_env('NOPE', 'dflt') }}\nc: '{{ get_env('NOPE') }}'\nd: '{{ get_env('EMPTY', 'x') }}'\ne: {{ get_env('NOPE', default='kw') }}\n",
            &env,
        )
        .unwrap();
        assert_eq!(out.text, "a: example.com/r\nb: dflt\nc: ''\nd: ''\ne: kw");
        // Only values found in the environment are recorded, defaults are not.
        let mut from_env = out.from_env;
        from_env.sort();
        assert_eq!(from_env, vec!["", "example.com/r"]);
    }

    #[test]
    fn a_filter_that_fails_on_the_default_sees_the_real_value() {
        let env = env_of(&[("PORT", "8080")]);
        let out = render("port: {{ get_env('PORT') | int + 1 }}", &env).unwrap();
        assert_eq!(out.text, "port: 8081");
    }

    #[test]
    fn names_reached_only_through_other_names_are_found() {
        let env = env_of(&[("A", "1"), ("B", "two")]);
        let out = render("{% if get_env('A') %}{{ get_env('B') }}{% endif %}", &env).unwrap();
        assert_eq!(out.text, "two");
    }

    #[test]
    fn undefined_names_render_empty_and_nothing_is_escaped() {
        let env = env_of(&[("V", "<a&b>")]);
        assert_eq!(
            render("x{{ nope }}y {{ get_env('V') }}", &env)
                .unwrap()
                .text,
            "xy <a&b>"
        );
    }

    #[test]
    fn errors_point_at_the_template() {
        let env = env_of(&[]);
        let (err, _) = render("a: 1\nb: {{ get_env( }}\n", &env).unwrap_err();
        assert_eq!(err.pos.line, 2);
        assert!(
            err.message.starts_with("template error: syntax error: "),
            "{}",
            err.message
        );
    }

    #[test]
    fn python_methods_and_jinja2_filters_work() {
        let env = env_of(&[("B", "Feature/X")]);
        let out = render(
            "{{ get_env('B').lower().replace('/', '-') }} {{ 'a,b'.split(',')[1] }} \
             {{ 'q-{}'.format(1) }} {{ 'ab'.startswith('a') }} {{ {'k': 1} | tojson }} \
             {{ 'one two' | wordcount }} {{ 'abcdefghijklmnopqrstuvwxyz' | truncate(9, true, '') }}",
            &env,
        )
        .unwrap();
        assert_eq!(out.text, "feature-x b q-1 True {\"k\": 1} 2 abcdefghi");
        let out = render("{{ [1, 'a', none, {'k': \"it's\"}] }} {{ false }}", &env).unwrap();
        assert_eq!(out.text, "[1, 'a', None, {'k': \"it's\"}] False");
    }
}
