//! What a failed build's message means and how to fix it: BuildKit's errors are precise but
//! worded for its developers ("secret tok not found: not found"); the hint names the file, flag
//! or setting to change.

use super::engine::BuildRequest;

/// What is known about the failed build besides the engine's message.
pub struct BuildFacts<'a> {
    pub request: &'a BuildRequest,
    /// The Dockerfile's text, when it could be read.
    pub dockerfile: Option<&'a str>,
    /// The engine's own platform (`linux/amd64`), when known.
    pub engine_platform: Option<&'a str>,
}

/// The hint for a build that failed with `message`.
pub fn build_hint(message: &str, facts: &BuildFacts<'_>) -> String {
    let lower = message.to_lowercase();
    // BuildKit 0.8 says "secret tok not found: not found", 0.13 "secret tok: not found".
    if let Some(id) = between(message, "secret ", ": not found")
        .or_else(|| between(message, "secret ", " not found"))
    {
        return format!(
            "the Dockerfile mounts the build secret `{id}` and none was given: pass \
             --secret id={id},env=VAR (or src=FILE), or add it to `secrets` for this location \
             in dagster-deploy.toml"
        );
    }
    if let Some(image) = facts.dockerfile.and_then(syntax_directive)
        && (lower.contains("gateway") || lower.contains(&image.to_lowercase()))
    {
        return format!(
            "the Dockerfile's first line `# syntax={image}` asks the engine to pull the \
             Dockerfile frontend image {image}, which it cannot get: make that image available \
             to the engine (pull it where the registry is reachable and `docker load` it, or \
             mirror it and point the line there), or remove the line to use the engine's \
             built-in frontend"
        );
    }
    // Refusals of our own session's file sync, relayed by the engine.
    if lower.contains("is larger than the limit of") {
        return "exclude files in .dockerignore, or raise --max-context-size \
                (DAGSTER_DEPLOY_MAX_CONTEXT_SIZE)"
            .into();
    }
    if lower.contains("changed while the build context was being sent") {
        return "a file of the build context changed during the build: build again once \
                nothing writes into the build directory"
            .into();
    }
    if let Some(platform) = facts.request.platform.as_deref()
        && facts
            .engine_platform
            .is_some_and(|own| !same_platform(own, platform))
    {
        let own = facts.engine_platform.unwrap_or_default();
        return format!(
            "`platform = \"{platform}\"` is not the engine's own platform ({own}): building for \
             it needs emulation on the engine's host (QEMU through binfmt_misc, e.g. \
             `apt-get install qemu-user-static binfmt-support`) and base images published for \
             {platform}; or remove `platform` to build for {own}"
        );
    }
    if lower.contains("unknown flag: link")
        || (lower.contains("dockerfile parse error")
            && facts.dockerfile.is_some_and(|t| t.contains("<<")))
    {
        return "this engine's built-in Dockerfile frontend predates heredocs (`RUN <<EOF`) and \
                `COPY --link` (Dockerfile syntax 1.4; Docker 23 and later have it): upgrade the \
                engine, or add `# syntax=docker/dockerfile:1` as the first line with that image \
                available to the engine"
            .into();
    }
    if let Some(target) = between(message, "target stage ", " could not be found") {
        let stages = facts.dockerfile.map(stage_names).unwrap_or_default();
        return format!(
            "`target = \"{target}\"` in dagster-deploy.toml names no stage of the Dockerfile \
             (its stages: {})",
            if stages.is_empty() {
                "none named".to_string()
            } else {
                stages.join(", ")
            }
        );
    }
    if lower.contains("failed to compute cache key") && lower.contains("not found") {
        return "a COPY/ADD source or a `--mount=type=bind` source is not in the build context: \
                check the path (relative to the context) and that .dockerignore keeps it"
            .into();
    }
    if lower.contains("failed to create llb definition")
        && (lower.contains("not found") || lower.contains("failed to do request"))
        || lower.contains("pull access denied")
        || lower.contains("failed to resolve source metadata")
    {
        return "a FROM image cannot be pulled: check its name and tag, the registry's \
                credentials (DAGSTER_DEPLOY_REGISTRY_USERNAME/PASSWORD or `docker login`), or \
                make the image available to the engine (`docker load`, `docker import`)"
            .into();
    }
    // BuildKit 0.8 says "parse error line 3:", 0.13 "parse error on line 3:".
    if let Some(line) = between(message, "dockerfile parse error line ", ":")
        .or_else(|| between(message, "dockerfile parse error on line ", ":"))
    {
        return format!("fix line {line} of the Dockerfile");
    }
    "fix the failing Dockerfile step shown in the log".into()
}

/// The text between `start` and the next `end`, without spaces.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let rest = &text[from..];
    let value = &rest[..rest.find(end)?];
    (!value.is_empty() && !value.contains(' ')).then_some(value)
}

/// The image of a `# syntax=IMAGE` parser directive (only directives start a Dockerfile).
pub fn syntax_directive(text: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.trim();
        let comment = line.strip_prefix('#')?;
        if let Some((key, value)) = comment.split_once('=')
            && key.trim().eq_ignore_ascii_case("syntax")
        {
            return Some(value.trim().to_string());
        }
    }
    None
}

/// `FROM image AS name` stage names.
fn stage_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [from, .., as_, name]
                    if from.eq_ignore_ascii_case("FROM") && as_.eq_ignore_ascii_case("AS") =>
                {
                    Some(name.to_string())
                }
                _ => None,
            }
        })
        .collect()
}

/// `linux/amd64` and `linux/amd64/v2`, or `linux/arm64` and `linux/arm64/v8`, are one.
fn same_platform(a: &str, b: &str) -> bool {
    let short = |p: &str| p.split('/').take(2).collect::<Vec<_>>().join("/");
    short(a) == short(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(message: &str, dockerfile: &str, platform: Option<&str>) -> String {
        let request = BuildRequest {
            platform: platform.map(str::to_string),
            ..Default::default()
        };
        build_hint(
            message,
            &BuildFacts {
                request: &request,
                dockerfile: Some(dockerfile),
                engine_platform: Some("linux/amd64"),
            },
        )
    }

    #[test]
    fn each_buildkit_failure_gets_its_fix() {
        for message in ["secret tok not found: not found", "secret tok: not found"] {
            let h = hint(message, "", None);
            assert!(h.contains("--secret id=tok,env=VAR"), "{message}: {h}");
        }
        let h = hint(
            "failed to solve with frontend gateway.v0: failed to do request: Head \"https://registry-1.docker.io/v2/docker/dockerfile/manifests/1.7\"",
            "# syntax=docker/dockerfile:1.7\nFROM x\n",
            None,
        );
        assert!(h.contains("`# syntax=docker/dockerfile:1.7`"), "{h}");
        let h = hint(
            "failed to solve: the build context in /x is larger than the limit of 1.0 MiB",
            "",
            None,
        );
        assert!(h.contains("--max-context-size"), "{h}");
        let h = hint("failed to do request", "FROM x\n", Some("linux/arm64"));
        assert!(h.contains("emulation"), "{h}");
        assert!(!hint("x", "FROM x\n", Some("linux/amd64/v2")).contains("emulation"));
        let h = hint(
            "failed to create LLB definition: target stage nope could not be found",
            "FROM x AS build\nFROM y as runtime\n",
            None,
        );
        assert!(h.contains("(its stages: build, runtime)"), "{h}");
        let h = hint(
            "failed to compute cache key: \"/uv.lock\" not found: not found",
            "",
            None,
        );
        assert!(h.contains("not in the build context"), "{h}");
        let h = hint(
            "dockerfile parse error line 5: Unknown flag: link",
            "",
            None,
        );
        assert!(h.contains("COPY --link"), "{h}");
        let h = hint(
            "dockerfile parse error line 3: unknown instruction: ECHO",
            "FROM x\nRUN <<EOF\necho\nEOF\n",
            None,
        );
        assert!(h.contains("heredocs"), "{h}");
        let h = hint(
            "failed to create LLB definition: localhost:5000/nope:1: not found",
            "",
            None,
        );
        assert!(h.contains("FROM image cannot be pulled"), "{h}");
        for message in [
            "dockerfile parse error line 2: unknown instruction: RN",
            "dockerfile parse error on line 2: unknown instruction: RN (did you mean RUN?)",
        ] {
            assert_eq!(
                hint(message, "FROM x\n", None),
                "fix line 2 of the Dockerfile"
            );
        }
    }

    #[test]
    fn syntax_directive_only_at_the_top() {
        assert_eq!(
            syntax_directive("# syntax = docker/dockerfile:1\nFROM x\n").as_deref(),
            Some("docker/dockerfile:1")
        );
        assert_eq!(syntax_directive("FROM x\n# syntax=a\n"), None);
    }
}
