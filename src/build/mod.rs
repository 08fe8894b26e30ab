//! Docker builds: the build context of a location (tar, `.dockerignore`), the engine that builds
//! and pushes images (bollard), and the run that turns a plan into pushed images.
//!
//! [`build_image`] builds one context; [`run`] builds every location a plan says to build, in
//! parallel, reusing images whose content-key tag is already in the registry. The tag scheme
//! is described in [`target`].

mod base_images;
pub mod buildkit;
pub mod context;
pub mod diagnose;
pub mod docker;
pub mod dockerfile;
pub mod engine;
pub mod outcome;
pub mod run;
pub mod secrets;
pub mod session;
mod share;
mod stream_log;
pub mod tar_stream;
pub mod target;

pub use context::{
    BuildContext, ContextEntry, ContextError, ContextOptions, EntryKind, human_size,
};
pub use docker::DockerEngine;
// The ignore-file rules live with planning, which decides build inputs with them.
pub use crate::plan::dockerignore::{self, DockerIgnore};
pub use engine::{
    BuildRequest, Builder, BuiltImage, Engine, EngineError, ImageDetails, Progress, ProgressEvent,
    PushedImage,
};
pub use outcome::{BuildReport, BuildStatus, BuildSummary, Failure, LocationResult, Step};
pub use run::{BuildReporter, LocationReporter, Services, run};
pub use session::{EXIT_INTERRUPTED, Outcome, RunError, execute, source_url};
pub use tar_stream::{ContextBody, ContextProducer};
pub use target::{BuildOptions, BuildTarget, DockerfileSource, resolve, resolve_all};

pub use crate::registry::{ImageRef, RegistryCredentials};

/// A location's build failed, either while sending its context or inside the engine.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error("location `{location}`: {source}")]
    Engine {
        location: String,
        #[source]
        source: EngineError,
    },
}

/// Builds `context` with `engine`; `request.dockerfile` is replaced by the context's own name
/// for the Dockerfile. The classic builder gets the context as a tar; BuildKit reads it through
/// its session (as from `docker buildx build`, so `.dockerignore` applies exactly as there). A
/// context error (size limit, unreadable file) wins over the engine's error it caused.
pub async fn build_image<E: Engine>(
    engine: &E,
    context: BuildContext,
    request: &BuildRequest,
    progress: &Progress<'_>,
) -> Result<BuiltImage, BuildError> {
    let location = context.location().to_string();
    let mut request = request.clone();
    let engine_error = |source| BuildError::Engine {
        location: location.clone(),
        source,
    };
    if engine.builder(request.builder).map_err(engine_error)? == Builder::BuildKit {
        let (dirs, dockerfile) = context.synced_dirs();
        request.dockerfile = dockerfile;
        request.synced = Some(dirs);
        let no_tar: ContextBody = Box::pin(futures_util::stream::empty());
        return engine
            .build_image(&request, no_tar, progress)
            .await
            .map_err(engine_error);
    }
    request.dockerfile = context.dockerfile().to_string();
    let (body, producer) = context.stream();
    let built = engine.build_image(&request, body, progress).await;
    let produced = producer.finish().await;
    match (built, produced) {
        (_, Err(e)) if !matches!(e, ContextError::Aborted { .. }) => Err(BuildError::Context(e)),
        (Err(source), _) => Err(engine_error(source)),
        (Ok(image), _) => Ok(image),
    }
}
