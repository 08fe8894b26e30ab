//! Docker builds: the build context of a location (tar, `.dockerignore`), and the engine that
//! builds and pushes images (bollard).
//!
//! [`build_image`] is the one entry point the build command needs per location: it streams the
//! context to the engine and reports whichever side failed first, with the location's name.

pub mod context;
pub mod docker;
pub mod dockerignore;
pub mod engine;
mod pattern;
mod stream_log;
pub mod tar_stream;

pub use context::{BuildContext, ContextEntry, ContextError, ContextOptions, EntryKind};
pub use docker::DockerEngine;
pub use dockerignore::DockerIgnore;
pub use engine::{
    BuildRequest, BuiltImage, Engine, EngineError, ImageDetails, ImageRef, Progress, PushedImage,
    RegistryCredentials,
};
pub use tar_stream::{ContextBody, ContextProducer};

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
/// for the Dockerfile. A context error (size limit, unreadable file) wins over the engine's
/// error it caused.
pub async fn build_image<E: Engine>(
    engine: &E,
    context: BuildContext,
    request: &BuildRequest,
    progress: &Progress<'_>,
) -> Result<BuiltImage, BuildError> {
    let location = context.location().to_string();
    let mut request = request.clone();
    request.dockerfile = context.dockerfile().to_string();
    let (body, producer) = context.stream();
    let built = engine.build_image(&request, body, progress).await;
    let produced = producer.finish().await;
    match (built, produced) {
        (_, Err(e)) if !matches!(e, ContextError::Aborted { .. }) => Err(BuildError::Context(e)),
        (Err(source), _) => Err(BuildError::Engine { location, source }),
        (Ok(image), _) => Ok(image),
    }
}
