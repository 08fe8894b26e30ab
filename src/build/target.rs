//! From a planned location to what will be built and pushed: the context, the Dockerfile, the
//! build parameters and the image names. Pure (it only looks at which files exist), so
//! `deploy --dry-run` shows exactly what `build` would do.
//!
//! Tag scheme (one repository, `build.registry`, shared by every location):
//! - `<registry>:<location>-<content key>`: the image identity. Identical inputs give the same
//!   tag, which is how an existing image is found and reused. With `--build-arg` overrides or a
//!   generated Dockerfile the key is mixed with them (`ck-` + 16 hex digits again).
//! - `<registry>:<location>-<short sha>`: for people (template `--tag-template`).
//! - `<registry>:<location>-latest`: moves to the last image built; the next build uses it as
//!   its layer cache (`cache_from`), pulling it first on a fresh CI runner.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::context::{ContextOptions, DEFAULT_DOCKERFILE};
use super::dockerfile;
use super::engine::{BuildRequest, Builder};
use super::outcome::{Failure, Step};
use super::secrets::SecretSpec;
use crate::changes::paths;
use crate::plan::{Plan, PlannedLocation};
use crate::registry::{ImageRef, tag_fragment};

/// Default `--tag-template`.
pub const DEFAULT_TAG_TEMPLATE: &str = "{location}-{sha}";
/// Suffix of the moving cache tag.
pub const CACHE_TAG_SUFFIX: &str = "latest";

/// OCI label keys, plus the location's name. Few on purpose: the classic builder adds each
/// label as one more step (a container commit) at the end of the build.
pub const LABEL_SOURCE: &str = "org.opencontainers.image.source";
pub const LABEL_REVISION: &str = "org.opencontainers.image.revision";
pub const LABEL_CREATED: &str = "org.opencontainers.image.created";
pub const LABEL_LOCATION: &str = "io.dagster.code-location";

/// How to build (from the command line).
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Builds at once.
    pub jobs: usize,
    /// Stop everything at the first failure.
    pub fail_fast: bool,
    /// Template of the human tag (`{location}`, `{sha}`, `{commit}`, `{content_key}`);
    /// `None`: no human tag.
    pub tag_template: Option<String>,
    /// Use and move `<location>-latest` as the layer cache.
    pub cache: bool,
    /// `--build-arg` values, over every location's own.
    pub build_args: BTreeMap<String, String>,
    /// Largest build context, in bytes.
    pub max_context_size: Option<u64>,
    /// Network for `RUN` steps.
    pub network: Option<String>,
    /// `org.opencontainers.image.source`.
    pub source_url: Option<String>,
    /// `org.opencontainers.image.created` (RFC 3339).
    pub created: String,
    /// Push the images. Off: build only, with no registry access at all (a test build, or a
    /// fork's pull request that gets no registry credentials).
    pub push: bool,
    /// The engine's builder to use (`--builder`).
    pub builder: Builder,
    /// `--secret` values' sources, over every location's own `secrets`.
    pub secrets: Vec<SecretSpec>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            jobs: default_jobs(),
            fail_fast: false,
            tag_template: Some(DEFAULT_TAG_TEMPLATE.to_string()),
            cache: true,
            build_args: BTreeMap::new(),
            max_context_size: None,
            network: None,
            source_url: None,
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            push: true,
            builder: Builder::Auto,
            secrets: Vec::new(),
        }
    }
}

/// Builds at once by default: the engine does the work, so twice the cores, at least 2, at
/// most 8 (more mostly adds memory pressure on the engine).
pub fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores * 2).clamp(2, 8)
}

/// Where a location's Dockerfile comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerfileSource {
    File(PathBuf),
    Generated(String),
}

/// Everything needed to build and push one location.
#[derive(Debug, Clone)]
pub struct BuildTarget {
    pub location: String,
    pub content_key: String,
    /// `<registry>:<location>-<key>`: built, pushed first, and checked for reuse.
    pub image: ImageRef,
    /// Further tags pushed for the same image (the human tag).
    pub extra_tags: Vec<ImageRef>,
    /// `<registry>:<location>-latest`: layer cache source, moved after a successful push.
    pub cache_image: Option<ImageRef>,
    pub dockerfile: DockerfileSource,
    pub context: ContextOptions,
    /// Build parameters; the tag and credentials are filled in when building.
    pub request: BuildRequest,
    /// Push (and check the registry for reuse); off: build only.
    pub push: bool,
    /// Where the build secrets come from (read when the build starts); by id, flags winning.
    pub secrets: Vec<SecretSpec>,
}

/// Resolves every location the plan builds, in plan order.
pub fn resolve_all(plan: &Plan, options: &BuildOptions) -> Vec<Result<BuildTarget, Failure>> {
    plan.locations
        .iter()
        .filter(|l| l.action == crate::plan::Action::Build)
        .map(|l| resolve(plan, l, options))
        .collect()
}

/// Resolves one location; a failure is that location's alone (nothing is built for it).
pub fn resolve(
    plan: &Plan,
    loc: &PlannedLocation,
    options: &BuildOptions,
) -> Result<BuildTarget, Failure> {
    let fail =
        |message: String, hint: &str| Failure::new(&loc.name, Step::Configure, message, hint);
    let Some(content_key) = loc.content_key.clone() else {
        return Err(fail(
            format!("location `{}` has no content key in the plan", loc.name),
            "this is a bug: the plan computes a key for every location it builds",
        ));
    };
    let Some(registry) = loc.registry.as_deref().filter(|r| !r.trim().is_empty()) else {
        return Err(fail(
            format!(
                "location `{}` must be built but has no `build.registry`",
                loc.name
            ),
            "set `build.registry` for it (or in `defaults.build`) in dagster_cloud.yaml, e.g. \
             `registry: ghcr.io/acme/dagster`",
        ));
    };
    let repository = ImageRef::repository(registry).map_err(|e| {
        fail(
            format!("location `{}`: build.registry: {e}", loc.name),
            "write `build.registry` as `host[:port]/path` in lower case, without a tag",
        )
    })?;

    let yaml_dir = paths::parent(&plan.config);
    let directory = plan.repository.join(match loc.build_directory.as_str() {
        "." => "",
        dir => dir,
    });
    let settings = &loc.settings;
    let dockerfile_path = settings
        .dockerfile
        .as_ref()
        .map(|d| plan.repository.join(yaml_dir).join(d));
    let default_exists = [DEFAULT_DOCKERFILE, "dockerfile"]
        .iter()
        .any(|name| directory.join(name).is_file());
    let dockerfile = match &dockerfile_path {
        Some(path) => DockerfileSource::File(path.clone()),
        None if default_exists || !directory.is_dir() => {
            DockerfileSource::File(directory.join(DEFAULT_DOCKERFILE))
        }
        None => DockerfileSource::Generated(dockerfile::generate(&directory, settings)),
    };

    let mut build_args = settings.build_args.clone();
    build_args.extend(options.build_args.clone());
    let mut extras: Vec<String> = options
        .build_args
        .iter()
        .map(|(k, v)| format!("build-arg {k}={v}"))
        .collect();
    if matches!(dockerfile, DockerfileSource::Generated(_)) {
        extras.push(dockerfile::GENERATOR_VERSION.to_string());
    }
    let key = image_key(&content_key, &extras);

    let location_tag = location_fragment(&loc.name);
    let tag = |suffix: &str| {
        repository
            .with_tag(&format!("{location_tag}-{suffix}"))
            .map_err(|e| {
                fail(
                    format!("location `{}`: {e}", loc.name),
                    "shorten the location name or the tag template",
                )
            })
    };
    let image = tag(&key)?;
    let mut extra_tags = Vec::new();
    if let Some(template) = &options.tag_template {
        let text = expand_template(template, &loc.name, &plan.head.commit, &key);
        let human = repository.with_tag(&tag_fragment(&text)).map_err(|e| {
            fail(
                format!("location `{}`: --tag-template {template:?}: {e}", loc.name),
                "use letters, digits, `_`, `.`, `-` and the placeholders {location}, {sha}, \
                 {commit}, {content_key}",
            )
        })?;
        if human != image {
            extra_tags.push(human);
        }
    }
    let cache_image = if options.cache && options.push {
        Some(tag(CACHE_TAG_SUFFIX)?)
    } else {
        None
    };

    let mut context = ContextOptions::new(&loc.name, &directory);
    context.size_limit = options.max_context_size;
    match &dockerfile {
        DockerfileSource::File(path) => context.dockerfile = Some(path.clone()),
        DockerfileSource::Generated(text) => context.generated_dockerfile = Some(text.clone()),
    }

    let mut labels = BTreeMap::from([
        (LABEL_REVISION.to_string(), plan.head.commit.clone()),
        (LABEL_CREATED.to_string(), options.created.clone()),
        (LABEL_LOCATION.to_string(), loc.name.clone()),
    ]);
    if let Some(url) = &options.source_url {
        labels.insert(LABEL_SOURCE.to_string(), url.clone());
    }
    let mut secrets = Vec::new();
    for text in &settings.secrets {
        // Checked when the settings file was read; a bad entry cannot reach here.
        if let Ok(spec) = SecretSpec::parse(text) {
            secrets.push(spec);
        }
    }
    for spec in &options.secrets {
        secrets.retain(|s: &SecretSpec| s.id != spec.id);
        secrets.push(spec.clone());
    }
    let request = BuildRequest {
        builder: options.builder,
        build_args,
        labels,
        target: settings.target.clone(),
        platform: settings.platform.clone(),
        network: options.network.clone(),
        ..Default::default()
    };
    Ok(BuildTarget {
        location: loc.name.clone(),
        content_key: key,
        image,
        extra_tags,
        cache_image,
        dockerfile,
        context,
        request,
        push: options.push,
        secrets,
    })
}

/// The plan's content key, or a key of it and what else shapes the image.
fn image_key(content_key: &str, extras: &[String]) -> String {
    if extras.is_empty() {
        return content_key.to_string();
    }
    let mut hash = Sha256::new();
    hash.update(content_key.as_bytes());
    for extra in extras {
        hash.update(b"\0");
        hash.update(extra.as_bytes());
    }
    let hex: String = hash
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{}{hex}", crate::changes::CONTENT_KEY_PREFIX)
}

/// The location name as a tag fragment, short enough to leave room for the key.
fn location_fragment(name: &str) -> String {
    let mut fragment = tag_fragment(name);
    fragment.truncate(100);
    fragment
}

fn expand_template(template: &str, location: &str, commit: &str, key: &str) -> String {
    template
        .replace("{location}", location)
        .replace("{sha}", commit.get(..7).unwrap_or(commit))
        .replace("{commit}", commit)
        .replace("{content_key}", key)
}

/// The build directory shown to people: relative to the repository when inside it.
pub fn display_path(plan: &Plan, path: &Path) -> String {
    match path.strip_prefix(&plan.repository) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".into(),
        Ok(rel) => rel.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_mix_in_overrides_only_when_there_are_some() {
        assert_eq!(image_key("ck-0123456789abcdef", &[]), "ck-0123456789abcdef");
        let mixed = image_key("ck-0123456789abcdef", &["build-arg A=1".into()]);
        assert!(mixed.starts_with("ck-") && mixed.len() == 19, "{mixed}");
        assert_ne!(
            mixed,
            image_key("ck-0123456789abcdef", &["build-arg A=2".into()])
        );
    }

    #[test]
    fn templates_expand() {
        assert_eq!(
            expand_template("{location}-{sha}", "etl", "0123456789abcdef", "ck-1"),
            "etl-0123456"
        );
        assert_eq!(
            expand_template("{commit}.{content_key}", "etl", "abc", "ck-1"),
            "abc.ck-1"
        );
    }
}

impl BuildTarget {
    /// The Dockerfile's text (`None` when it cannot be read: the context step says why).
    pub fn dockerfile_text(&self) -> Option<String> {
        match &self.dockerfile {
            DockerfileSource::Generated(text) => Some(text.clone()),
            DockerfileSource::File(path) => std::fs::read_to_string(path).ok(),
        }
    }

    /// The context and request to build with: the labels become one `LABEL` line at the end of
    /// the Dockerfile (sent under a generated name), because the classic builder turns each
    /// label of the request into a step of its own, a container commit each. Kept as request
    /// labels when that would change their meaning: with a `target` stage (the last line
    /// belongs to the last stage) or an `escape` parser directive (other quoting).
    pub fn with_inline_labels(&self) -> (ContextOptions, BuildRequest) {
        let mut context = self.context.clone();
        let mut request = self.request.clone();
        if request.labels.is_empty() || request.target.is_some() {
            return (context, request);
        }
        // The context step reports a missing or unreadable Dockerfile.
        let Some(text) = self.dockerfile_text() else {
            return (context, request);
        };
        if has_escape_directive(&text) {
            return (context, request);
        }
        let pairs: Vec<String> = request
            .labels
            .iter()
            .map(|(k, v)| format!("{}={}", quote(k), quote(v)))
            .collect();
        let separator = if text.ends_with('\n') { "" } else { "\n" };
        context.generated_dockerfile =
            Some(format!("{text}{separator}LABEL {}\n", pairs.join(" ")));
        request.labels.clear();
        (context, request)
    }
}

/// A double-quoted Dockerfile word (`\` and `"` escaped, newlines as spaces).
fn quote(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(['\n', '\r'], " ");
    format!("\"{escaped}\"")
}

/// Parser directives (`# escape=...`) come before any other line.
fn has_escape_directive(text: &str) -> bool {
    text.lines()
        .take_while(|l| l.trim_start().starts_with('#'))
        .any(|l| {
            let directive = l
                .trim_start()
                .trim_start_matches('#')
                .trim()
                .to_ascii_lowercase();
            directive.replace(' ', "").starts_with("escape=")
        })
}

#[cfg(test)]
mod inline_label_tests {
    use super::*;

    fn target_with(text: &str, build_target: Option<&str>) -> BuildTarget {
        BuildTarget {
            location: "a".into(),
            content_key: "ck-1".into(),
            image: ImageRef::parse("r.example/x:a-ck-1").unwrap(),
            extra_tags: vec![],
            cache_image: None,
            dockerfile: DockerfileSource::Generated(text.into()),
            context: ContextOptions::new("a", "/nonexistent"),
            push: true,
            secrets: Vec::new(),
            request: BuildRequest {
                labels: BTreeMap::from([
                    ("k".to_string(), "say \"hi\"".to_string()),
                    ("io.x".to_string(), "1".to_string()),
                ]),
                target: build_target.map(str::to_string),
                ..Default::default()
            },
        }
    }

    #[test]
    fn labels_become_one_line() {
        let (context, request) = target_with("FROM scratch", None).with_inline_labels();
        assert_eq!(
            context.generated_dockerfile.as_deref(),
            Some("FROM scratch\nLABEL \"io.x\"=\"1\" \"k\"=\"say \\\"hi\\\"\"\n")
        );
        assert!(request.labels.is_empty());
    }

    #[test]
    fn target_stages_and_escape_directives_keep_request_labels() {
        let (context, request) =
            target_with("FROM scratch\n", Some("runtime")).with_inline_labels();
        assert_eq!(context.generated_dockerfile, None);
        assert_eq!(request.labels.len(), 2);
        let (context, request) =
            target_with("# escape=`\nFROM scratch\n", None).with_inline_labels();
        assert_eq!(context.generated_dockerfile, None);
        assert_eq!(request.labels.len(), 2);
    }
}
