//! The images a Dockerfile's `FROM` lines pull, so that a build can be given credentials for
//! their registries as `docker build` is (the engine asks only for what it pulls).
//!
//! Read as the Dockerfile frontend reads them: line continuations, comments, global `ARG`s
//! (before the first `FROM`) with their defaults overridden by build arguments, `$NAME` and
//! `${NAME}` in the image, `--platform` flags, and stage names (`FROM builder`), which pull
//! nothing. What cannot be resolved is left out: it only costs a credential lookup.

use std::collections::BTreeMap;

/// The images the `FROM` lines of `dockerfile` name, with `build_args` applied, in order.
pub fn base_images(dockerfile: &str, build_args: &BTreeMap<String, String>) -> Vec<String> {
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<String> = Vec::new();
    let mut images = Vec::new();
    let mut seen_from = false;
    for line in instructions(dockerfile) {
        let mut words = line.split_whitespace();
        let Some(keyword) = words.next() else {
            continue;
        };
        match keyword.to_ascii_uppercase().as_str() {
            "ARG" if !seen_from => {
                for decl in words {
                    let (name, default) = match decl.split_once('=') {
                        Some((n, d)) => (n, Some(unquote(d))),
                        None => (decl, None),
                    };
                    let value = build_args.get(name).cloned().or(default);
                    if let Some(value) = value {
                        args.insert(name.to_string(), value);
                    }
                }
            }
            "FROM" => {
                seen_from = true;
                let rest: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
                let Some(image) = rest.first().and_then(|i| substitute(i, &args)) else {
                    continue;
                };
                if let [_, as_kw, name] = rest.as_slice()
                    && as_kw.eq_ignore_ascii_case("as")
                {
                    stages.push(name.to_ascii_lowercase());
                }
                let is_stage = stages.contains(&image.to_ascii_lowercase());
                if !is_stage && image != "scratch" && !images.contains(&image) {
                    images.push(image);
                }
            }
            _ => {}
        }
    }
    images
}

/// Instructions with their continuation lines joined, comments and blank lines dropped.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

fn unquote(value: &str) -> String {
    let v = value.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner.to_string();
        }
    }
    v.to_string()
}

/// `$NAME` and `${NAME}` replaced; `None` when one has no value.
fn substitute(word: &str, args: &BTreeMap<String, String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}')?;
                (&braced[..end], &braced[end + 1..])
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        out.push_str(args.get(name)?);
        rest = tail;
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lines_resolve_global_args_and_skip_stages() {
        let dockerfile = "\
# syntax=docker/dockerfile:1
ARG BASE_IMAGE=python:3.11-slim
ARG TOOLS=\"ghcr.io/acme/tools:1\"
FROM --platform=linux/amd64 ${BASE_IMAGE} AS builder
RUN echo hi
FROM $TOOLS as tools
FROM \\
  registry.example.com/base/runtime:2
COPY --from=builder /w /w
FROM builder
FROM scratch
FROM ${UNSET}
";
        let none = BTreeMap::new();
        assert_eq!(
            base_images(dockerfile, &none),
            [
                "python:3.11-slim",
                "ghcr.io/acme/tools:1",
                "registry.example.com/base/runtime:2"
            ]
        );
        let args = BTreeMap::from([("BASE_IMAGE".to_string(), "acme.io/py:3.12".to_string())]);
        assert_eq!(base_images(dockerfile, &args)[0], "acme.io/py:3.12");
    }
}
