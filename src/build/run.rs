//! Building every target: up to `jobs` at once, each one checked against the registry first
//! (an existing content-key tag is reused), then context → cache pull → build → push.
//!
//! Everything runs as futures of the caller's task (no spawned tasks), so dropping the future
//! returned by [`run`] (Ctrl-C) drops every engine request: the engine stops building and
//! pushing, and the registry never gets a manifest for a tag that was not fully pushed.

use std::time::Instant;

use futures_util::StreamExt;
use tokio::sync::watch;

use super::base_images;
use super::buildkit::{INLINE_CACHE_ARG, StepCounts};
use super::diagnose::{BuildFacts, build_hint};
use super::engine::BuildRequest;
use super::engine::{Builder, BuiltImage, Engine, EngineError, ProgressEvent};
use super::outcome::{BuildReport, BuildStatus, Failure, LocationResult, Step};
use super::secrets;
use super::share::{self, Role};
use super::target::{BuildOptions, BuildTarget, DockerfileSource};
use super::{BuildError, ContextError, build_image, context::BuildContext, human_size};
use crate::config::Env;
use crate::registry::{ImageRef, Keychain, RegistryClient, RegistryCredentials};

/// What a build talks to.
pub struct Services<'a, E: Engine> {
    pub engine: &'a E,
    pub registry: &'a RegistryClient,
    pub keychain: &'a Keychain,
    /// Where `env=` build secrets are read.
    pub env: Env<'a>,
}

/// Where builds report their progress: `progress::Reporter` (terminal bars, CI lines)
/// implements it, tests use a quiet one.
pub trait BuildReporter: Sync {
    /// Starts reporting one location.
    fn location(&self, name: &str) -> Box<dyn LocationReporter>;
}

/// One location's progress.
pub trait LocationReporter: Send + Sync {
    /// A new step (`checking registry`, `building`, `pushing <tag>`).
    fn step(&self, text: &str);
    /// A line of the engine's output, or bytes moved.
    fn event(&self, event: ProgressEvent<'_>);
    /// The location's last line, with details (a failure's log tail) under it.
    fn finish(&self, ok: bool, summary: &str, details: &[String]);
}

/// Builds (or reuses) every target; `Err` targets are reported as failed without any work.
pub async fn run<E: Engine>(
    services: &Services<'_, E>,
    targets: Vec<Result<BuildTarget, Failure>>,
    options: &BuildOptions,
    reporter: &dyn BuildReporter,
) -> BuildReport {
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let jobs = options.jobs.max(1);
    let mut targets = targets;
    // Leaders come first in plan order, so with any `jobs` a leader starts before its followers.
    let roles = share::assign(&mut targets);
    let mut indexed: Vec<(usize, LocationResult)> =
        futures_util::stream::iter(targets.into_iter().zip(roles).enumerate())
            .map(|(index, (target, role))| {
                let cancel_tx = &cancel_tx;
                let mut cancel_rx = cancel_rx.clone();
                async move {
                    let name = match &target {
                        Ok(t) => t.location.clone(),
                        Err(f) => f.location.clone(),
                    };
                    let progress = reporter.location(&name);
                    let started = Instant::now();
                    let work = async {
                        match target {
                            Ok(target) => {
                                build_one(services, &target, role, progress.as_ref()).await
                            }
                            Err(failure) => Err(failure),
                        }
                    };
                    let outcome = if *cancel_rx.borrow() {
                        None
                    } else {
                        tokio::select! {
                            outcome = work => Some(outcome),
                            _ = cancel_rx.wait_for(|c| *c) => None,
                        }
                    };
                    let result = finish(&name, outcome, started, progress.as_ref());
                    if options.fail_fast && result.status == BuildStatus::Failed {
                        let _ = cancel_tx.send(true);
                    }
                    (index, result)
                }
            })
            .buffer_unordered(jobs)
            .collect()
            .await;
    indexed.sort_by_key(|(i, _)| *i);
    BuildReport::new(indexed.into_iter().map(|(_, r)| r).collect())
}

/// The report of targets that all failed before any work (no engine needed).
pub fn report_failures(failures: Vec<Failure>, reporter: &dyn BuildReporter) -> BuildReport {
    let results = failures
        .into_iter()
        .map(|f| {
            let name = f.location.clone();
            let progress = reporter.location(&name);
            finish(&name, Some(Err(f)), Instant::now(), progress.as_ref())
        })
        .collect();
    BuildReport::new(results)
}

/// A location that ended with an image.
struct Done {
    status: BuildStatus,
    image: String,
    pushed_tags: Vec<String>,
    digest: Option<String>,
    content_key: String,
    /// The builder that ran and its step counts (nothing for a reused image).
    builder: Option<Builder>,
    steps: Option<StepCounts>,
    /// The location whose build this image came from, when shared.
    shared_with: Option<String>,
}

fn finish(
    name: &str,
    outcome: Option<Result<Done, Failure>>,
    started: Instant,
    progress: &dyn LocationReporter,
) -> LocationResult {
    let seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    let mut result = LocationResult {
        location: name.to_string(),
        status: BuildStatus::Cancelled,
        image: None,
        pushed_tags: Vec::new(),
        digest: None,
        content_key: None,
        builder: None,
        steps: None,
        cached_steps: None,
        shared_build: None,
        seconds,
        failure: None,
    };
    match outcome {
        Some(Ok(done)) => {
            let verb = done.status.as_str();
            let how = match (done.builder, done.steps) {
                (Some(builder), Some(c)) => format!(
                    " with {} ({} of {} steps cached)",
                    builder.as_str(),
                    c.cached,
                    c.steps
                ),
                (Some(builder), None) => format!(" with {}", builder.as_str()),
                _ => String::new(),
            };
            let how = match &done.shared_with {
                Some(leader) => format!(" (the image built for `{leader}`)"),
                None => how,
            };
            progress.finish(
                true,
                &format!("{verb} {}{how} in {seconds:.1} s", done.image),
                &[],
            );
            result.shared_build = done.shared_with;
            result.builder = done.builder;
            result.steps = done.steps.map(|c| c.steps);
            result.cached_steps = done.steps.map(|c| c.cached);
            result.status = done.status;
            result.image = Some(done.image);
            result.pushed_tags = done.pushed_tags;
            result.digest = done.digest;
            result.content_key = Some(done.content_key);
        }
        Some(Err(failure)) => {
            let mut details = vec![failure.message.clone()];
            if !failure.hint.is_empty() {
                details.push(format!("hint: {}", failure.hint));
            }
            if !failure.log_tail.is_empty() {
                details.push("last lines of output:".into());
                details.extend(failure.log_tail.iter().map(|l| format!("  {l}")));
            }
            progress.finish(
                false,
                &format!("failed at step `{}`", failure.step.as_str()),
                &details,
            );
            result.status = BuildStatus::Failed;
            result.failure = Some(failure);
        }
        None => progress.finish(
            false,
            "cancelled: another location failed (--fail-fast)",
            &[],
        ),
    }
    result
}

async fn build_one<E: Engine>(
    services: &Services<'_, E>,
    target: &BuildTarget,
    role: Role,
    progress: &dyn LocationReporter,
) -> Result<Done, Failure> {
    let location = target.location.as_str();
    let fail = |step: Step, message: String, hint: String| Failure {
        location: location.to_string(),
        step,
        message,
        hint,
        log_tail: Vec::new(),
    };
    let registry = target.image.registry.as_str();
    let credentials = services.keychain.get(registry).map_err(|e| {
        fail(
            Step::Credentials,
            format!("location `{location}`: {e}"),
            e.hint(),
        )
    })?;

    // Without a push the registry is not read either: a fork's build has no credentials.
    let exists = target.push && {
        progress.step(&format!("checking {}", target.image));
        services
            .registry
            .manifest_exists(&target.image, credentials.as_ref())
            .await
            .map_err(|e| {
                fail(
                    Step::Check,
                    format!("location `{location}`: checking {}: {e}", target.image),
                    e.hint(),
                )
            })?
    };
    if exists {
        // The human tag names this commit: point it at the reused image (registry side, no
        // layer moves) unless it already exists.
        let mut pushed_tags = Vec::new();
        for extra in &target.extra_tags {
            let tag_failure = |e: crate::registry::RegistryError| {
                fail(
                    Step::Push,
                    format!(
                        "location `{location}`: tagging {} as {extra}: {e}",
                        target.image
                    ),
                    e.hint(),
                )
            };
            let registry = services.registry;
            if !registry
                .manifest_exists(extra, credentials.as_ref())
                .await
                .map_err(tag_failure)?
            {
                progress.step(&format!("tagging {extra}"));
                registry
                    .copy_tag(&target.image, extra.reference(), credentials.as_ref())
                    .await
                    .map_err(tag_failure)?;
                pushed_tags.push(extra.to_string());
            }
        }
        return Ok(Done {
            status: BuildStatus::Reused,
            image: target.image.to_string(),
            pushed_tags,
            digest: None,
            content_key: target.content_key.clone(),
            builder: None,
            steps: None,
            shared_with: None,
        });
    }

    let (leader, shared) = match role {
        Role::Alone => (None, None),
        Role::Leader(sender) => (Some(sender), None),
        Role::Follower { leader, mut image } => {
            progress.step(&format!("waiting for the build it shares with `{leader}`"));
            // A leader that ends without an image (failed, or reused from the registry)
            // closes the channel: then this location builds on its own.
            let built = image
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|b| b.clone());
            (None, built.map(|b| (leader, b)))
        }
    };
    let (built, shared_with) = match shared {
        Some((leader, built)) => (built, Some(leader)),
        None => (
            build_here(services, target, credentials.as_ref(), progress).await?,
            None,
        ),
    };
    // The others of a shared build get the image once it is pushed: pushing the same layers to
    // one repository at once can fail in the registry (seen on Docker 26 under load); after
    // the leader, their pushes find every layer there.
    let hand_over = |leader: Option<watch::Sender<Option<BuiltImage>>>| {
        if let Some(sender) = leader {
            sender.send_replace(Some(built.clone()));
        }
    };

    let mut pushed_tags = Vec::new();
    let mut digest = None;
    if !target.push {
        hand_over(leader);
        return Ok(Done {
            status: BuildStatus::Built,
            image: target.image.to_string(),
            pushed_tags,
            digest,
            content_key: target.content_key.clone(),
            builder: Some(built.builder),
            steps: built.steps,
            shared_with,
        });
    }
    // The content-key tag first: once it exists, the image is complete (a re-run reuses it).
    let on_event = |e: ProgressEvent<'_>| progress.event(e);
    let mut tags = vec![&target.image];
    tags.extend(&target.extra_tags);
    tags.extend(&target.cache_image);
    for tag in tags {
        progress.step(&format!("pushing {tag}"));
        if *tag != target.image || shared_with.is_some() {
            services
                .engine
                .tag_image(&built.id, tag)
                .await
                .map_err(|e| engine_failure(location, Step::Push, e))?;
        }
        let pushed = services
            .engine
            .push_image(tag, credentials.as_ref(), &on_event)
            .await
            .map_err(|e| engine_failure(location, Step::Push, e))?;
        if *tag == target.image {
            digest = pushed.digest;
        }
        pushed_tags.push(tag.to_string());
    }
    hand_over(leader);
    Ok(Done {
        status: BuildStatus::Built,
        image: target.image.to_string(),
        pushed_tags,
        digest,
        content_key: target.content_key.clone(),
        builder: Some(built.builder),
        steps: built.steps,
        shared_with,
    })
}

/// Credentials for the registries the Dockerfile's `FROM` lines pull from (other than the
/// push registry, whose credentials the build has already), as `docker build` uses them.
fn pull_credentials(
    keychain: &Keychain,
    target: &BuildTarget,
    request: &BuildRequest,
) -> Result<Vec<RegistryCredentials>, Failure> {
    let location = target.location.as_str();
    let text = match &target.dockerfile {
        DockerfileSource::File(path) => std::fs::read_to_string(path).unwrap_or_default(),
        DockerfileSource::Generated(text) => text.clone(),
    };
    let mut found: Vec<RegistryCredentials> = Vec::new();
    for image in base_images::base_images(&text, &request.build_args) {
        let Ok(image) = ImageRef::parse(&image) else {
            continue;
        };
        let known = |c: &RegistryCredentials| c.matches(&image.registry);
        if request.registry_credentials.iter().chain(&found).any(known) {
            continue;
        }
        match keychain.for_pull(&image.registry) {
            Ok(Some(c)) => found.push(c),
            Ok(None) => {}
            Err(e) => {
                return Err(Failure::new(
                    location,
                    Step::Credentials,
                    format!("location `{location}`: base image {image}: {e}"),
                    &e.hint(),
                ));
            }
        }
    }
    Ok(found)
}

/// Sends the context and builds the image of `target` in the engine.
async fn build_here<E: Engine>(
    services: &Services<'_, E>,
    target: &BuildTarget,
    credentials: Option<&RegistryCredentials>,
    progress: &dyn LocationReporter,
) -> Result<BuiltImage, Failure> {
    let location = target.location.as_str();
    progress.step("reading the build context");
    let builder = services
        .engine
        .builder(target.request.builder)
        .map_err(|e| engine_failure(location, Step::Build, e))?;
    // Labels cost the classic builder a step each, BuildKit nothing: only the classic
    // builder gets them as one Dockerfile line.
    let (options, mut request) = match builder {
        Builder::Classic => target.with_inline_labels(),
        _ => (target.context.clone(), target.request.clone()),
    };
    request.builder = builder;
    let context = tokio::task::spawn_blocking(move || BuildContext::prepare(&options))
        .await
        .map_err(|e| {
            Failure::new(
                location,
                Step::Context,
                format!("location `{location}`: {e}"),
                "",
            )
        })?
        .map_err(|e| context_failure(location, e))?;
    let on_event = |e: ProgressEvent<'_>| progress.event(e);
    request.tag = Some(target.image.to_string());
    request.registry_credentials = credentials.iter().cloned().cloned().collect();
    request
        .registry_credentials
        .extend(pull_credentials(services.keychain, target, &request)?);
    request.secrets = secrets::read_all(&target.secrets, services.env).map_err(|e| {
        let message = format!("location `{location}`: {e}");
        Failure::new(location, Step::Secrets, message, &e.hint())
    })?;
    if let Some(cache) = &target.cache_image {
        if request.builder == Builder::BuildKit {
            // BuildKit imports the cache straight from the registry (only the layers it
            // reuses are read) and writes cache metadata into the image it pushes next. A
            // missing cache image (the first build) would show as a failed step: ask first.
            request
                .build_args
                .insert(INLINE_CACHE_ARG.to_string(), "1".to_string());
            if let Ok(true) = services.registry.manifest_exists(cache, credentials).await {
                request.cache_from = vec![cache.to_string()];
            }
        } else if pull_cache(services, cache, credentials, progress).await {
            request.cache_from = vec![cache.to_string()];
        }
    }
    progress.step(&format!(
        "building with {} ({} build context)",
        request.builder.as_str(),
        human_size(context.content_size())
    ));
    let built = match build_image(services.engine, context, &request, &on_event).await {
        Ok(built) => built,
        Err(BuildError::Context(e)) => return Err(context_failure(location, e)),
        Err(BuildError::Engine { source, .. }) => {
            let mut failure = engine_failure(location, Step::Build, source);
            let dockerfile = target.dockerfile_text();
            let engine_platform = services.engine.platform();
            let facts = BuildFacts {
                request: &request,
                dockerfile: dockerfile.as_deref(),
                engine_platform: engine_platform.as_deref(),
            };
            failure.hint = build_hint(&failure.message, &facts);
            return Err(failure);
        }
    };
    Ok(built)
}

/// Makes the cache image local (pulling it when needed); `false` when there is none. A
/// failed pull only costs cache hits, so it is reported and the build goes on.
async fn pull_cache<E: Engine>(
    services: &Services<'_, E>,
    cache: &ImageRef,
    credentials: Option<&RegistryCredentials>,
    progress: &dyn LocationReporter,
) -> bool {
    let name = cache.to_string();
    if let Ok(true) = services.engine.image_exists(&name).await {
        return true;
    }
    progress.step(&format!("pulling {name} for its layer cache"));
    let on_event = |e: ProgressEvent<'_>| progress.event(e);
    match services
        .engine
        .pull_image(cache, credentials, &on_event)
        .await
    {
        Ok(true) => true,
        Ok(false) => {
            progress.step(&format!("no cache image {name} yet (first build)"));
            false
        }
        Err(e) => {
            progress.step(&format!("building without cache: {e}"));
            false
        }
    }
}

fn context_failure(location: &str, e: ContextError) -> Failure {
    let hint = match &e {
        ContextError::TooLarge { .. } => {
            "add what the image does not need to the .dockerignore, or raise --max-context-size"
        }
        ContextError::MissingDockerfile { .. } => {
            "fix `dockerfile` for this location in dagster-deploy.toml, or remove it to use \
             the build directory's Dockerfile (a default one is generated when there is none)"
        }
        ContextError::MissingDirectory { .. } => "fix `build.directory` in dagster_cloud.yaml",
        ContextError::DockerIgnore { .. } => "fix the pattern; Docker refuses this file too",
        _ => "",
    };
    Failure::new(location, Step::Context, e.to_string(), hint)
}

fn engine_failure(location: &str, step: Step, e: EngineError) -> Failure {
    let log_tail = e.log_tail().to_vec();
    let message = match &e {
        // The tail is shown on its own lines; keep the message to its first line.
        EngineError::Build { message, .. } => format!("image build failed: {message}"),
        EngineError::Push { image, message, .. } => format!("push of {image} failed: {message}"),
        EngineError::CutShort { operation, .. } => super::engine::cut_short_message(operation),
        other => other.to_string(),
    };
    let hint = match &e {
        EngineError::Push {
            message, registry, ..
        } if is_auth_message(message) => format!(
            "the registry {registry} refused the credentials: check {} and {}, or `docker login`",
            crate::registry::USERNAME_VAR,
            crate::registry::PASSWORD_VAR
        ),
        EngineError::CutShort { .. } => {
            "the connection to the Docker engine broke off; run the command again (what \
             was pushed is reused)"
                .to_string()
        }
        _ => String::new(),
    };
    Failure {
        location: location.to_string(),
        step,
        message: format!("location `{location}`: {message}"),
        hint,
        log_tail,
    }
}

fn is_auth_message(message: &str) -> bool {
    let lower = message.to_lowercase();
    [
        "unauthorized",
        "authentication required",
        "no basic auth",
        "denied",
    ]
    .iter()
    .any(|w| lower.contains(w))
}
