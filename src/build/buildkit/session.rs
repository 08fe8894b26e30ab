//! The BuildKit session of one build: the engine asks the client, over a connection the client
//! opens (`POST /session`, upgraded to HTTP/2), for the build's files, registry credentials
//! (cache import, `FROM` pulls) and build secrets. We serve those three services and the health
//! check the engine polls; the session ends when the returned future is dropped.

use std::future::Future;
use std::pin::Pin;

use bollard::health::health_check_response::ServingStatus;
use bollard::health::health_server::{Health, HealthServer};
use bollard::health::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use bollard::moby::buildkit::secrets::v1::secrets_server::{Secrets, SecretsServer};
use bollard::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};
use bollard::moby::filesync::v1::auth_server::{Auth, AuthServer};
use bollard::moby::filesync::v1::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};
use futures_util::Stream;
use hyper_util::rt::TokioExecutor;
use tonic::{Request, Response, Status};

use super::filesync::{FileSyncService, SyncedDirs};
use super::wire::{self, Endpoint};
use crate::build::secrets::SecretValues;
use crate::registry::RegistryCredentials;
use bollard::moby::filesync::packet::file_sync_server::FileSyncServer;

/// The gRPC methods we serve; the engine only calls what the session announces.
const METHODS: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/moby.filesync.v1.Auth/Credentials",
    "/moby.filesync.v1.Auth/FetchToken",
    "/moby.filesync.v1.Auth/GetTokenAuthority",
    "/moby.filesync.v1.Auth/VerifyTokenAuthority",
    "/moby.buildkit.secrets.v1.Secrets/GetSecret",
    "/moby.filesync.v1.FileSync/DiffCopy",
];

/// What one session gives the engine.
pub(crate) struct Services {
    pub credentials: Vec<RegistryCredentials>,
    pub secrets: SecretValues,
    pub files: SyncedDirs,
}

/// A random session id (BuildKit's are 25 lowercase alphanumerics).
pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 16];
    // Uniqueness, not secrecy: a clock fallback is enough if the OS has no randomness.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Opens the session `id` on the engine; the returned future serves it until dropped.
pub(crate) async fn open(
    endpoint: &Endpoint,
    id: &str,
    services: Services,
) -> Result<Pin<Box<dyn Future<Output = ()> + Send>>, String> {
    let mut request = endpoint
        .request("POST", "/session")
        .header("Connection", "Upgrade")
        .header("Upgrade", "h2c")
        .header("X-Docker-Expose-Session-Uuid", id)
        .header("X-Docker-Expose-Session-Name", "dagster-deploy")
        .header("X-Docker-Expose-Session-Sharedkey", id);
    for method in METHODS {
        request = request.header("X-Docker-Expose-Session-Grpc-Method", *method);
    }
    let upgraded = wire::upgrade(endpoint, request).await?;
    let routes = tonic::service::Routes::new(HealthServer::new(Healthy))
        .add_service(AuthServer::new(Credentials(services.credentials)))
        .add_service(SecretsServer::new(SecretStore(services.secrets)))
        .add_service(FileSyncServer::new(FileSyncService(services.files)));
    let service = hyper_util::service::TowerToHyperService::new(routes);
    Ok(Box::pin(async move {
        // The engine ends the connection when it is done with the session; an error here
        // surfaces as a build error ("no active session"), which says more.
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(upgraded, service)
            .await;
    }))
}

struct Healthy;

#[tonic::async_trait]
impl Health for Healthy {
    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    async fn list(
        &self,
        _: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        Err(Status::unimplemented("list"))
    }

    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send + 'static>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

/// Registry credentials by host, as the engine asks for them.
struct Credentials(Vec<RegistryCredentials>);

#[tonic::async_trait]
impl Auth for Credentials {
    async fn credentials(
        &self,
        request: Request<CredentialsRequest>,
    ) -> Result<Response<CredentialsResponse>, Status> {
        let host = request.into_inner().host;
        // An unknown registry gets empty credentials: the engine goes on anonymously.
        let response = self
            .0
            .iter()
            .find(|c| c.matches(&host))
            .map(|c| {
                if c.is_identity_token() {
                    CredentialsResponse {
                        username: String::new(),
                        secret: c.password.expose().to_string(),
                    }
                } else {
                    CredentialsResponse {
                        username: c.username.clone(),
                        secret: c.password.expose().to_string(),
                    }
                }
            })
            .unwrap_or_default();
        Ok(Response::new(response))
    }

    // Unimplemented token methods make the engine fetch tokens itself with `credentials`.
    async fn fetch_token(
        &self,
        _: Request<FetchTokenRequest>,
    ) -> Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented("fetch_token"))
    }

    async fn get_token_authority(
        &self,
        _: Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("get_token_authority"))
    }

    async fn verify_token_authority(
        &self,
        _: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("verify_token_authority"))
    }
}

struct SecretStore(SecretValues);

#[tonic::async_trait]
impl Secrets for SecretStore {
    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        let id = request.into_inner().id;
        match self.0.get(&id) {
            Some(value) => Ok(Response::new(GetSecretResponse {
                data: value.expose().to_vec(),
            })),
            // BuildKit words this as "secret ID not found", which the build error explains.
            None => Err(Status::not_found(format!("secret {id} not found"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_aliases_match() {
        // What the engine's credential requests are matched with.
        let same_registry = |a: &str, b: &str| {
            RegistryCredentials {
                registry: a.into(),
                username: String::new(),
                password: "".into(),
            }
            .matches(b)
        };
        assert!(same_registry("docker.io", "registry-1.docker.io"));
        assert!(same_registry("localhost:5000", "localhost:5000"));
        assert!(!same_registry("localhost:5000", "docker.io"));
        assert_eq!(new_id().len(), 32);
        assert_ne!(new_id(), new_id());
    }
}
