//! Image locations as containers, through the Docker Engine API (bollard).
//!
//! Each code server is a container `dagster-deploy-<hash>` labelled with this server's id (two
//! servers on one engine never touch each other's), the deployment, location, revision, key and
//! host port, on the user-defined bridge network `dagster-deploy`, its gRPC port published on
//! 127.0.0.1 only. No privileges: no host mounts, `no-new-privileges`, every capability dropped,
//! memory and process limits, and no environment but the `DAGSTER_*` and `container_context`
//! variables. Images come only from registries the server trusts, pulled with the server's
//! credentials in the Engine API request, never given to the container.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, ListContainersOptions,
    LogsOptions, RemoveContainerOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::super::registry::RegistryAccess;
use super::spec::Spec;
use crate::protocol::hex;
use crate::registry::ImageRef;

/// The bridge network code-server containers join.
pub(crate) const NETWORK: &str = "dagster-deploy";
/// The port the code server listens on inside its container.
const CONTAINER_PORT: u16 = 4000;
const LABEL_SERVER: &str = "dagster-deploy.server";
const LABEL_DEPLOYMENT: &str = "dagster-deploy.deployment";
const LABEL_LOCATION: &str = "dagster-deploy.location";
const LABEL_REVISION: &str = "dagster-deploy.revision";
const LABEL_KEY: &str = "dagster-deploy.key";
const LABEL_PORT: &str = "dagster-deploy.port";
/// Limits of one code-server container.
const MEMORY_BYTES: i64 = 4 * 1024 * 1024 * 1024;
const PIDS_LIMIT: i64 = 1024;
/// Engine requests (a pull streams for as long as it progresses, up to `PULL_TIMEOUT`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const PULL_TIMEOUT: Duration = Duration::from_secs(900);
/// How long `docker stop` waits before killing.
const STOP_SECONDS: i32 = 10;

/// A container the engine reports for this server.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub id: String,
    pub deployment: String,
    pub location: String,
    pub revision: i64,
    pub key: String,
    pub port: u16,
    /// `None` while running; the exit code once it stopped (`-1` when unknown).
    pub exited: Option<i64>,
}

/// The engine, connected on first use (and again after a failure: it may come up later).
pub(crate) struct Engine {
    host: Option<String>,
    server_id: String,
    access: RegistryAccess,
    trusted: Vec<String>,
    client: Mutex<Option<Docker>>,
}

impl Engine {
    pub(crate) fn new(
        host: Option<String>,
        server_id: String,
        access: RegistryAccess,
        trusted: Vec<String>,
    ) -> Self {
        Engine {
            host,
            server_id,
            access,
            trusted,
            client: Mutex::new(None),
        }
    }

    fn endpoint(&self) -> &str {
        self.host
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .unwrap_or("unix:///var/run/docker.sock")
    }

    async fn docker(&self) -> Result<Docker, String> {
        let mut client = self.client.lock().await;
        if let Some(d) = client.as_ref() {
            return Ok(d.clone());
        }
        let unreachable = |e: String| {
            format!(
                "cannot reach the Docker engine at {}: {e}; start it, or point DOCKER_HOST at a \
                 running engine before starting `dagster-deploy serve`",
                self.endpoint()
            )
        };
        let docker = Docker::connect_with_host(self.endpoint())
            .map_err(|e| unreachable(e.to_string()))?
            .with_timeout(REQUEST_TIMEOUT);
        let docker = tokio::time::timeout(Duration::from_secs(15), docker.negotiate_version())
            .await
            .map_err(|_| unreachable("no answer within 15 s".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        *client = Some(docker.clone());
        Ok(docker)
    }

    /// Forgets the connection after an engine error, so the next use connects again.
    async fn reset(&self) {
        *self.client.lock().await = None;
    }

    /// Pulls (when needed), creates and starts the code server of `spec` on host `port`;
    /// returns the container id. The error is the load error to report.
    pub(crate) async fn start(
        &self,
        spec: &Spec,
        image: &str,
        port: u16,
    ) -> Result<String, String> {
        let result = self.start_inner(spec, image, port).await;
        if result.is_err() {
            self.reset().await;
        }
        result
    }

    async fn start_inner(&self, spec: &Spec, image: &str, port: u16) -> Result<String, String> {
        let location = &spec.location;
        let reference = ImageRef::parse(image).map_err(|_| {
            format!("location '{location}': image '{image}' is not a valid image reference")
        })?;
        if !self.access.trusts(&self.trusted, &reference.registry) {
            return Err(format!(
                "location '{location}': image '{image}' is in registry {}, which this server does \
                 not pull from; push it to a registry the server trusts, or start the server with \
                 --registry {}",
                reference.registry, reference.registry
            ));
        }
        let docker = self
            .docker()
            .await
            .map_err(|e| format!("location '{location}': {e}"))?;
        if docker.inspect_image(image).await.is_err() {
            self.pull(&docker, &reference, image)
                .await
                .map_err(|e| format!("location '{location}': cannot pull image '{image}': {e}"))?;
        }
        self.ensure_network(&docker)
            .await
            .map_err(|e| format!("location '{location}': {e}"))?;
        let name = self.container_name(spec);
        // A container of the same name is a leftover of this very code server (same key):
        // replace it.
        let _ = docker
            .remove_container(
                &name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
        let created = docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                self.container_body(spec, image, port),
            )
            .await
            .map_err(|e| {
                format!(
                    "location '{location}': cannot create a container of '{image}': {}",
                    reason(&e)
                )
            })?;
        docker
            .start_container(&created.id, None)
            .await
            .map_err(|e| {
                format!(
                    "location '{location}': cannot start the container of '{image}': {}",
                    reason(&e)
                )
            })?;
        Ok(created.id)
    }

    fn container_name(&self, spec: &Spec) -> String {
        let mut h = Sha256::new();
        h.update(self.server_id.as_bytes());
        h.update([0]);
        h.update(spec.key.as_bytes());
        format!("dagster-deploy-{}", &hex(&h.finalize())[..16])
    }

    fn container_body(&self, spec: &Spec, image: &str, port: u16) -> ContainerCreateBody {
        let exposed = format!("{CONTAINER_PORT}/tcp");
        let labels = HashMap::from([
            (LABEL_SERVER.to_string(), self.server_id.clone()),
            (LABEL_DEPLOYMENT.to_string(), spec.deployment.clone()),
            (LABEL_LOCATION.to_string(), spec.location.clone()),
            (LABEL_REVISION.to_string(), spec.revision.to_string()),
            (LABEL_KEY.to_string(), spec.key.clone()),
            (LABEL_PORT.to_string(), port.to_string()),
        ]);
        let cmd = [
            "dagster",
            "api",
            "grpc",
            "--lazy-load-user-code",
            "-h",
            "0.0.0.0",
            "-p",
            &CONTAINER_PORT.to_string(),
            "--fixed-server-id",
            &spec.server_id(),
        ]
        .map(str::to_string)
        .to_vec();
        ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(cmd),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            exposed_ports: Some(vec![exposed.clone()]),
            host_config: Some(HostConfig {
                port_bindings: Some(HashMap::from([(
                    exposed,
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(port.to_string()),
                    }]),
                )])),
                network_mode: Some(NETWORK.into()),
                security_opt: Some(vec!["no-new-privileges".into()]),
                cap_drop: Some(vec!["ALL".into()]),
                memory: Some(MEMORY_BYTES),
                pids_limit: Some(PIDS_LIMIT),
                init: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    async fn pull(&self, docker: &Docker, reference: &ImageRef, image: &str) -> Result<(), String> {
        let credentials = self
            .access
            .credentials_for(&reference.registry)
            .map(|c| c.to_docker());
        let options = CreateImageOptions {
            from_image: Some(image.to_string()),
            ..Default::default()
        };
        let pull = async {
            let mut stream = docker.create_image(Some(options), None, credentials);
            while let Some(item) = stream.next().await {
                let info = item.map_err(|e| reason(&e))?;
                if let Some(detail) = info.error_detail {
                    return Err(detail.message.unwrap_or_else(|| "the pull failed".into()));
                }
            }
            Ok(())
        };
        let pulled = tokio::time::timeout(PULL_TIMEOUT, pull)
            .await
            .map_err(|_| format!("no progress within {} s", PULL_TIMEOUT.as_secs()))?;
        // The engine having the image is what counts: bollard can end a complete pull's
        // stream with an error (see `build::stream_log`).
        if pulled.is_err() && docker.inspect_image(image).await.is_ok() {
            return Ok(());
        }
        pulled.map_err(|e| {
            format!(
                "{e}; push the image to {}, or give the server credentials that can read \
                 it (--registry-user)",
                reference.registry
            )
        })
    }

    async fn ensure_network(&self, docker: &Docker) -> Result<(), String> {
        if docker.inspect_network(NETWORK, None).await.is_ok() {
            return Ok(());
        }
        match docker
            .create_network(NetworkCreateRequest {
                name: NETWORK.into(),
                driver: Some("bridge".into()),
                // Code servers answer unauthenticated gRPC: one deployment's code must not
                // reach another's. The webserver reaches each through its published port.
                options: Some(HashMap::from([(
                    "com.docker.network.bridge.enable_icc".to_string(),
                    "false".to_string(),
                )])),
                ..Default::default()
            })
            .await
        {
            Ok(_) => Ok(()),
            // Created by another server meanwhile.
            Err(_) if docker.inspect_network(NETWORK, None).await.is_ok() => Ok(()),
            Err(e) => Err(format!(
                "cannot create the Docker network {NETWORK}: {}",
                reason(&e)
            )),
        }
    }

    /// The last `lines` lines of the container's output (empty when unavailable).
    pub(crate) async fn log_tail(&self, id: &str, lines: usize) -> String {
        let Ok(docker) = self.docker().await else {
            return String::new();
        };
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..Default::default()
        };
        let mut stream = docker.logs(id, Some(options));
        let mut text = String::new();
        while let Some(Ok(item)) = stream.next().await {
            text.push_str(&item.to_string());
            if text.len() > 64 * 1024 {
                break;
            }
        }
        text
    }

    /// Starts a stopped container again (a crashed code server).
    pub(crate) async fn restart(&self, id: &str) -> Result<(), String> {
        let docker = self.docker().await?;
        docker
            .start_container(id, None)
            .await
            .map_err(|e| reason(&e))
    }

    /// `None` while running; the exit code once it stopped (`-1` when it is gone).
    pub(crate) async fn exited(&self, id: &str) -> Result<Option<i64>, String> {
        let docker = self.docker().await?;
        match docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => {
                let state = c.state.unwrap_or_default();
                Ok(if state.running == Some(true) {
                    None
                } else {
                    Some(state.exit_code.unwrap_or(-1))
                })
            }
            Err(e) if is_not_found(&e) => Ok(Some(-1)),
            Err(e) => {
                self.reset().await;
                Err(reason(&e))
            }
        }
    }

    /// Stops (gracefully: SIGTERM and a grace period) and removes the container; gone
    /// already is fine.
    pub(crate) async fn remove(&self, id: &str, graceful: bool) {
        let Ok(docker) = self.docker().await else {
            return;
        };
        if graceful {
            let _ = docker
                .stop_container(
                    id,
                    Some(StopContainerOptions {
                        t: Some(STOP_SECONDS),
                        signal: None,
                    }),
                )
                .await;
        }
        if let Err(e) = docker
            .remove_container(
                id,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
            && !is_not_found(&e)
        {
            tracing::warn!(
                container = id,
                "cannot remove code server container: {}",
                reason(&e)
            );
        }
    }

    /// The containers of this server, running or not.
    pub(crate) async fn list(&self) -> Result<Vec<Found>, String> {
        let docker = self.docker().await?;
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_SERVER}={}", self.server_id)],
        )]);
        let containers = match docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                self.reset().await;
                return Err(reason(&e));
            }
        };
        Ok(containers
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels?;
                let get = |k: &str| labels.get(k).cloned();
                Some(Found {
                    id: c.id?,
                    deployment: get(LABEL_DEPLOYMENT)?,
                    location: get(LABEL_LOCATION)?,
                    revision: get(LABEL_REVISION)?.parse().ok()?,
                    key: get(LABEL_KEY)?,
                    port: get(LABEL_PORT)?.parse().ok()?,
                    exited: if c
                        .state
                        .is_some_and(|s| s.to_string().eq_ignore_ascii_case("running"))
                    {
                        None
                    } else {
                        Some(exit_code(c.status.as_deref().unwrap_or_default()))
                    },
                })
            })
            .collect())
    }
}

/// The code in a container status such as `Exited (137) 2 seconds ago`.
fn exit_code(status: &str) -> i64 {
    status
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .and_then(|(code, _)| code.parse().ok())
        .unwrap_or(-1)
}

fn is_not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// The engine's own message, without bollard's wrapping.
fn reason(e: &BollardError) -> String {
    match e {
        BollardError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exit_codes_come_from_the_status() {
        assert_eq!(super::exit_code("Exited (137) 2 seconds ago"), 137);
        assert_eq!(super::exit_code("Created"), -1);
    }
}
