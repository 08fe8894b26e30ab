//! [`Engine`] over the Docker Engine API (bollard). Builds go to the engine's BuildKit
//! ([`super::buildkit`]) when it has one, else to the classic builder; either way the context
//! is a tar streamed in the request body, which is what [`super::BuildContext::stream`] makes.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::models::SystemVersion;
use bollard::query_parameters::{
    BuildImageOptions, BuilderVersion, CreateImageOptions, PushImageOptions, RemoveImageOptions,
    TagImageOptions,
};

use super::buildkit::{self, Endpoint};
use super::engine::{
    BuildRequest, Builder, BuiltImage, Engine, EngineError, ImageDetails, Progress, ProgressEvent,
    PushedImage,
};
use super::stream_log::{consume_build, consume_pull, consume_push};
use super::tar_stream::ContextBody;
use crate::registry::{ImageRef, RegistryCredentials, error_chain, normalize_host};

/// Where the engine is when `DOCKER_HOST` is not set.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// How long to wait for the engine to answer the first request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Request limit (until the response starts): a large context upload comes before the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);

/// A connected Docker engine.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    endpoint: String,
    /// How to reach the engine's BuildKit, or why it cannot be used.
    buildkit: Result<Endpoint, String>,
    /// `os/arch` of the engine.
    platform: Option<String>,
}

/// The first Engine API version with BuildKit sessions (Docker 18.09).
const BUILDKIT_MIN_API: (u32, u32) = (1, 39);

impl DockerEngine {
    /// Connects through `DOCKER_HOST`, else the local socket, and agrees on an API version.
    pub async fn connect() -> Result<DockerEngine, EngineError> {
        let host = std::env::var("DOCKER_HOST").ok();
        DockerEngine::connect_to(host.as_deref()).await
    }

    /// Connects to `host` (`unix://...`, `tcp://...`, `http://...`); `None` or empty means the
    /// local socket.
    pub async fn connect_to(host: Option<&str>) -> Result<DockerEngine, EngineError> {
        let endpoint = host
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .unwrap_or(DEFAULT_DOCKER_HOST)
            .to_string();
        let unavailable = |reason: String| EngineError::Unavailable {
            endpoint: endpoint.clone(),
            reason,
        };
        let docker = Docker::connect_with_host(&endpoint)
            .map_err(|e| unavailable(connect_reason(e)))?
            .with_timeout(REQUEST_TIMEOUT);
        // Older engines refuse requests for a newer API version than they speak.
        let docker = match tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version()).await {
            Ok(Ok(docker)) => docker,
            Ok(Err(e)) => return Err(unavailable(connect_reason(e))),
            Err(_) => {
                return Err(unavailable(format!(
                    "no answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
        };
        let version = docker.version().await.ok();
        let platform = version
            .as_ref()
            .and_then(|v| Some(format!("{}/{}", v.os.as_deref()?, v.arch.as_deref()?)));
        let buildkit = buildkit_endpoint(&docker, version, &endpoint);
        Ok(DockerEngine {
            docker,
            endpoint,
            buildkit,
            platform,
        })
    }

    /// The address this engine was reached at.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Registries the engine speaks plain HTTP to (its `insecure-registries` setting), so
    /// that registry API checks go the same way as the engine's pushes.
    pub async fn insecure_registries(&self) -> Vec<String> {
        let Ok(info) = self.docker.info().await else {
            return Vec::new();
        };
        info.registry_config
            .and_then(|c| c.index_configs)
            .map(|configs| {
                configs
                    .into_iter()
                    .filter(|(_, i)| i.secure == Some(false))
                    .map(|(name, _)| name)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The underlying client, for operations the trait does not cover.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    fn api_error(&self, operation: &str, error: BollardError) -> EngineError {
        match error {
            BollardError::DockerResponseServerError { message, .. } => EngineError::Api {
                operation: operation.to_string(),
                message,
            },
            other => EngineError::Api {
                operation: operation.to_string(),
                message: other.to_string(),
            },
        }
    }
}

/// Runs `attempt` once more when its stream was cut short (see `stream_log`): pushes and pulls
/// are safe to repeat, since the registry and the engine keep what they already have.
async fn again_if_cut_short<T, F>(
    progress: &Progress<'_>,
    note: &str,
    attempt: impl Fn() -> F,
) -> Result<T, EngineError>
where
    F: Future<Output = Result<T, EngineError>>,
{
    match attempt().await {
        Err(EngineError::CutShort { .. }) => {
            progress(ProgressEvent::Line(note));
            attempt().await
        }
        done => done,
    }
}

fn connect_reason(error: BollardError) -> String {
    match error {
        BollardError::SocketNotFoundError(path) => format!("the socket {path} does not exist"),
        BollardError::UnsupportedURISchemeError { uri } => {
            format!("`{uri}` is not a supported address (use unix://, tcp:// or http://)")
        }
        other => error_chain(&other),
    }
}

/// Where BuildKit builds go, when the engine speaks a recent enough API on Linux.
fn buildkit_endpoint(
    docker: &Docker,
    version: Option<SystemVersion>,
    host: &str,
) -> Result<Endpoint, String> {
    let version = version.ok_or("it does not say which version it is")?;
    let api = version.api_version.unwrap_or_default();
    let parsed = api
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
    match parsed {
        Some(v) if v >= BUILDKIT_MIN_API => {}
        _ => {
            return Err(format!(
                "it speaks Engine API {api}; BuildKit needs {}.{} (Docker 18.09 or later)",
                BUILDKIT_MIN_API.0, BUILDKIT_MIN_API.1
            ));
        }
    }
    if let Some(os) = version.os.filter(|os| os != "linux") {
        return Err(format!(
            "it is a {os} engine; BuildKit builds need a Linux engine"
        ));
    }
    // bollard speaks TLS to a tcp:// engine when DOCKER_TLS_VERIFY is set (any value); our
    // session connection is plain, so such an engine builds with the classic builder.
    if std::env::var_os("DOCKER_TLS_VERIFY").is_some() && !host.starts_with("unix://") {
        return Err(format!(
            "{host} is reached over TLS (DOCKER_TLS_VERIFY is set), and BuildKit sessions \
             over TLS are not supported"
        ));
    }
    let client = docker.client_version();
    let version = format!("{}.{}", client.major_version, client.minor_version);
    Endpoint::parse(host, &version)
        .ok_or_else(|| format!("{host} is not a unix:// or plain tcp:// address"))
}

fn is_not_found(error: &BollardError) -> bool {
    matches!(
        error,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl Engine for DockerEngine {
    fn platform(&self) -> Option<String> {
        self.platform.clone()
    }

    fn builder(&self, wanted: Builder) -> Result<Builder, EngineError> {
        match (wanted, &self.buildkit) {
            (Builder::Classic, _) | (Builder::Auto, Err(_)) => Ok(Builder::Classic),
            (_, Ok(_)) => Ok(Builder::BuildKit),
            (Builder::BuildKit, Err(reason)) => Err(EngineError::Build {
                message: format!(
                    "the engine at {} cannot run BuildKit builds: {reason}",
                    self.endpoint
                ),
                log: Vec::new(),
            }),
        }
    }

    async fn build_image(
        &self,
        request: &BuildRequest,
        context: ContextBody,
        progress: &Progress<'_>,
    ) -> Result<BuiltImage, EngineError> {
        if let (Builder::BuildKit, Ok(endpoint)) = (self.builder(request.builder)?, &self.buildkit)
        {
            let secrets = request.secrets.clone();
            return buildkit::build(endpoint, request, secrets, progress).await;
        }
        if let Some(id) = request.secrets.keys().next() {
            return Err(EngineError::Build {
                message: format!(
                    "build secret `{id}` needs BuildKit, and this build uses the classic builder"
                ),
                log: Vec::new(),
            });
        }
        let map = |m: &std::collections::BTreeMap<String, String>| {
            (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        };
        let options = BuildImageOptions {
            dockerfile: request.dockerfile.clone(),
            t: request.tag.clone(),
            rm: true,
            forcerm: true,
            nocache: request.no_cache,
            pull: request.pull.then(|| "1".to_string()),
            buildargs: map(&request.build_args),
            labels: map(&request.labels),
            networkmode: request.network.clone(),
            platform: request.platform.clone().unwrap_or_default(),
            target: request.target.clone().unwrap_or_default(),
            cachefrom: (!request.cache_from.is_empty()).then(|| request.cache_from.clone()),
            version: BuilderVersion::BuilderV1,
            ..Default::default()
        };
        let registry_config: HashMap<String, DockerCredentials> = request
            .registry_credentials
            .iter()
            .map(|c| {
                // The daemon looks Docker Hub up under its old index address.
                let key = match normalize_host(&c.registry).as_str() {
                    crate::registry::DOCKER_HUB => "https://index.docker.io/v1/".to_string(),
                    _ => c.registry.clone(),
                };
                (key, c.to_docker())
            })
            .collect();
        let registry_config = (!registry_config.is_empty()).then_some(registry_config);
        let body = bollard::body_try_stream(context);
        let stream = self
            .docker
            .build_image(options, registry_config, Some(body));
        consume_build(stream, progress).await
    }

    async fn tag_image(&self, source: &str, target: &ImageRef) -> Result<(), EngineError> {
        let options = TagImageOptions {
            repo: Some(target.name.clone()),
            tag: target.tag.clone(),
        };
        self.docker
            .tag_image(source, Some(options))
            .await
            .map_err(|e| self.api_error(&format!("tagging {source} as {target}"), e))
    }

    async fn push_image(
        &self,
        image: &ImageRef,
        credentials_for_push: Option<&RegistryCredentials>,
        progress: &Progress<'_>,
    ) -> Result<PushedImage, EngineError> {
        if image.tag.is_none() {
            return Err(EngineError::Push {
                image: image.to_string(),
                registry: image.registry.clone(),
                message: "only a tag can be pushed, not a digest".into(),
                log: Vec::new(),
            });
        }
        let options = PushImageOptions {
            tag: image.tag.clone(),
            ..Default::default()
        };
        let name = image.to_string();
        let push = || {
            let stream = self.docker.push_image(
                &image.name,
                Some(options.clone()),
                credentials_for_push.map(RegistryCredentials::to_docker),
            );
            consume_push(stream, &name, &image.registry, progress)
        };
        again_if_cut_short(progress, "the push stream ended early; pushing again", push).await
    }

    async fn pull_image(
        &self,
        image: &ImageRef,
        credentials_for_pull: Option<&RegistryCredentials>,
        progress: &Progress<'_>,
    ) -> Result<bool, EngineError> {
        let options = CreateImageOptions {
            from_image: Some(image.name.clone()),
            tag: Some(image.reference().to_string()),
            ..Default::default()
        };
        let name = image.to_string();
        let pull = || {
            let stream = self.docker.create_image(
                Some(options.clone()),
                None,
                credentials_for_pull.map(RegistryCredentials::to_docker),
            );
            consume_pull(stream, &name, progress)
        };
        again_if_cut_short(progress, "the pull stream ended early; pulling again", pull).await
    }

    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageDetails>, EngineError> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => Ok(Some(ImageDetails {
                id: image.id.unwrap_or_default(),
                repo_tags: image.repo_tags.unwrap_or_default(),
                repo_digests: image.repo_digests.unwrap_or_default(),
                labels: image
                    .config
                    .and_then(|c| c.labels)
                    .map(|l| l.into_iter().collect())
                    .unwrap_or_default(),
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.api_error(&format!("inspecting image {reference}"), e)),
        }
    }

    async fn remove_image(&self, reference: &str) -> Result<bool, EngineError> {
        let options = RemoveImageOptions {
            force: false,
            noprune: false,
            ..Default::default()
        };
        match self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(self.api_error(&format!("removing image {reference}"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_socket_names_it_and_says_how_to_start_docker() {
        let err = DockerEngine::connect_to(Some("unix:///nonexistent/dagster-deploy.sock"))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("no Docker engine answers at unix:///nonexistent/dagster-deploy.sock"),
            "{text}"
        );
        assert!(
            text.contains("the socket /nonexistent/dagster-deploy.sock does not exist"),
            "{text}"
        );
        assert!(text.contains("start Docker"), "{text}");
    }

    #[tokio::test]
    async fn stale_socket_without_engine_is_unavailable() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("docker.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let host = format!("unix://{}", path.display());
        let err = DockerEngine::connect_to(Some(&host)).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("no Docker engine answers at {host}: ")),
            "{text}"
        );
        assert!(text.contains("Connection refused"), "{text}");
    }

    #[tokio::test]
    async fn unsupported_address_is_explained() {
        let err = DockerEngine::connect_to(Some("ftp://x")).await.unwrap_err();
        assert!(err.to_string().contains("not a supported address"), "{err}");
    }

    #[tokio::test]
    async fn closed_tcp_port_is_unavailable() {
        // Port 9 (discard) on loopback: nothing listens there in the test environment.
        let err = DockerEngine::connect_to(Some("tcp://127.0.0.1:9"))
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::Unavailable { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("tcp://127.0.0.1:9"), "{text}");
        assert!(text.contains("Connection refused"), "{text}");
    }
}
