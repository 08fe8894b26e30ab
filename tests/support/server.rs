//! Helpers shared by the tests that start an in-process server (included with `#[path]` so that
//! it is compiled into each test binary, never as a test binary of its own).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use dagster_deploy::server::{
    self, ObservedRequest, RegistryAccess, RunningServer, ServeOptions, TokenScope,
};
use serde_json::{Value, json};

/// A server on 127.0.0.1:0 over a temporary data directory, recording every request.
pub struct TestServer {
    pub server: RunningServer,
    pub dir: tempfile::TempDir,
    /// An organisation token.
    pub token: String,
    pub requests: Arc<Mutex<Vec<ObservedRequest>>>,
}

impl TestServer {
    /// Image checks off: every location is LOADED at once.
    pub async fn start() -> TestServer {
        Self::start_with(None).await
    }

    pub async fn start_with(registry: Option<RegistryAccess>) -> TestServer {
        Self::start_opts(|opts| opts.registry = registry).await
    }

    /// Image checks off, then `options` may change anything.
    pub async fn start_opts(options: impl FnOnce(&mut ServeOptions)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let token = server::create_token(dir.path(), TokenScope::Organization).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let mut opts = ServeOptions::new(SocketAddr::from(([127, 0, 0, 1], 0)), dir.path());
        opts.registry = None;
        options(&mut opts);
        opts.observer = Some(Arc::new(move |r: &ObservedRequest| {
            seen.lock().unwrap().push(r.clone())
        }));
        let server = server::start(opts).await.unwrap();
        TestServer {
            server,
            dir,
            token,
            requests,
        }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: self.url(),
            token: Some(self.token.clone()),
            deployment: Some("prod".into()),
        }
    }

    /// Takes the requests recorded so far.
    pub fn take_requests(&self) -> Vec<ObservedRequest> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }

    pub async fn stop(self) {
        self.server.shutdown().await.unwrap();
    }
}

/// A tiny GraphQL client speaking like the reference client.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
    pub deployment: Option<String>,
}

impl Client {
    pub fn with_token(&self, token: Option<&str>) -> Client {
        Client {
            token: token.map(str::to_string),
            ..self.clone()
        }
    }

    pub fn with_deployment(&self, deployment: Option<&str>) -> Client {
        Client {
            deployment: deployment.map(str::to_string),
            ..self.clone()
        }
    }

    /// POST `{base}{path}` with `{"query", "variables"}`; returns the status and JSON body.
    pub async fn post(&self, path: &str, query: &str, variables: Value) -> (u16, Value) {
        let body = json!({ "query": query, "variables": variables });
        self.post_raw(path, body.to_string().into_bytes()).await
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("Content-Type", "application/json")
            .header("Dagster-Cloud-Scope", "deployment")
            .body(body);
        if let Some(t) = &self.token {
            req = req.header("Dagster-Cloud-Api-Token", t);
        }
        if let Some(d) = &self.deployment {
            req = req.header("Dagster-Cloud-Deployment", d);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// A query at `/graphql` that must succeed at the HTTP and GraphQL levels; returns `data`.
    pub async fn data(&self, query: &str, variables: Value) -> Value {
        let (status, body) = self.post("/graphql", query, variables).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
        body["data"].clone()
    }
}

pub const ADD_LOCATION: &str = "mutation CliAddOrUpdateLocation($document: GenericScalar!) {
    addOrUpdateLocationFromDocument(document: $document) {
        __typename
        ... on WorkspaceEntry { locationName }
        ... on PythonError { message stack }
        ... on InvalidLocationError { errors }
        ... on UnauthorizedError { message }
    }
}";

pub const DEPLOY_LOCATIONS: &str = "mutation CliDeployLocations($document: GenericScalar!) {
    deployLocations(document: $document) {
        __typename
        ... on DeployLocationsSuccess { locations { locationName } }
        ... on PythonError { message stack }
        ... on InvalidLocationError { errors }
    }
}";

pub const RECONCILE: &str = "mutation CliReconcileLocationsFromDoc($document: GenericScalar!) {
    reconcileLocationsFromDocument(document: $document) {
        __typename
        ... on ReconcileLocationsSuccess { locations { locationName } }
        ... on PythonError { message stack }
        ... on InvalidLocationError { errors }
    }
}";

pub const DELETE_LOCATION: &str = "mutation CliDeleteLocation($locationName: String!) {
    deleteLocation(locationName: $locationName) {
        __typename
        ... on DeleteLocationSuccess { locationName }
        ... on PythonError { message stack }
    }
}";

pub const LOCATIONS_AS_DOCUMENT: &str =
    "query CliLocationsAsDocument { locationsAsDocument { __typename document } }";

pub const WORKSPACE_ENTRIES: &str = "query CliWorkspaceEntries {
    workspace { workspaceEntries { locationName serializedDeploymentMetadata } }
}";

pub const WORKSPACE_OR_ERROR: &str = "query CliLocationsQuery {
  workspaceOrError {
    __typename
    ... on Workspace {
        locationEntries {
            __typename
            name
            loadStatus
            locationOrLoadError {
                __typename
                ... on RepositoryLocation { name }
                ... on PythonError {
                    message stack errorChain { isExplicitLink error { message stack } }
                }
            }
        }
    }
    ... on PythonError { message stack }
  }
}";

pub fn doc(name: &str, image: &str) -> Value {
    json!({
        "location_name": name,
        "code_source": {"module_name": name},
        "image": image,
        "git": {"commit_hash": "abc"},
    })
}

/// A fake registry (Docker Registry HTTP API v2, manifests only) with the bearer-token flow
/// (`bearer: true`) or basic auth, accepting `user:secret`. It has the images in `present`.
pub struct FakeRegistry {
    pub addr: SocketAddr,
    /// `(Accept header, authorised)` of every manifest HEAD.
    pub heads: Arc<Mutex<Vec<(String, bool)>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FakeRegistry {
    pub async fn start(bearer: bool, present: &[&str]) -> FakeRegistry {
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let present: Vec<String> = present.iter().map(|s| s.to_string()).collect();
        let seen = heads.clone();
        // base64("user:secret")
        let basic = "Basic dXNlcjpzZWNyZXQ=";
        let manifests = move |axum::extract::Path((name, reference)): axum::extract::Path<(
            String,
            String,
        )>,
                              headers: HeaderMap| {
            let seen = seen.clone();
            let present = present.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let ok = if bearer {
                    auth == "Bearer good-token"
                } else {
                    auth == basic
                };
                let accept = headers
                    .get("accept")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                seen.lock().unwrap().push((accept, ok));
                if !ok {
                    let challenge = if bearer {
                        format!(
                            "Bearer realm=\"http://{addr}/token\",service=\"fake\",scope=\"repository:{name}:pull\""
                        )
                    } else {
                        "Basic realm=\"fake\"".to_string()
                    };
                    return (StatusCode::UNAUTHORIZED, [("www-authenticate", challenge)])
                        .into_response();
                }
                if present.contains(&format!("{name}:{reference}")) {
                    StatusCode::OK.into_response()
                } else {
                    StatusCode::NOT_FOUND.into_response()
                }
            }
        };
        let token = move |headers: HeaderMap| async move {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
            if auth == Some(basic) {
                axum::Json(json!({"token": "good-token"})).into_response()
            } else {
                StatusCode::UNAUTHORIZED.into_response()
            }
        };
        let app = axum::Router::new()
            .route(
                "/v2/{name}/manifests/{reference}",
                axum::routing::head(manifests),
            )
            .route("/token", axum::routing::get(token));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        FakeRegistry {
            addr,
            heads,
            stop: Some(tx),
        }
    }

    pub fn access(&self, password: &str) -> RegistryAccess {
        RegistryAccess {
            credentials: vec![dagster_deploy::server::RegistryCredentials {
                registry: self.addr.to_string(),
                username: "user".into(),
                password: password.into(),
            }],
            insecure_registries: vec![],
        }
    }

    pub fn image(&self, name_tag: &str) -> String {
        format!("{}/{name_tag}", self.addr)
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Polls `workspaceOrError` until `location` is no longer LOADING; returns its entry.
pub async fn wait_loaded(client: &Client, location: &str) -> Value {
    for _ in 0..200 {
        let data = client.data(WORKSPACE_OR_ERROR, json!({})).await;
        let entries = data["workspaceOrError"]["locationEntries"]
            .as_array()
            .unwrap()
            .clone();
        if let Some(e) = entries.into_iter().find(|e| e["name"] == location)
            && e["loadStatus"] == "LOADED"
        {
            return e;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("location {location} never finished loading");
}

/// The `document` variable of each recorded `deployLocations`.
pub fn deployed_documents(requests: &[ObservedRequest]) -> Vec<Value> {
    requests
        .iter()
        .filter(|r| r.root_fields == ["deployLocations"])
        .map(|r| r.variables["document"].clone())
        .collect()
}

/// What a test of the reference CLI against our server starts with: the CLI, a running
/// server and a temporary home; `None` outside CI when the CLI is not installed.
pub async fn with_reference_cli() -> Option<(std::path::PathBuf, TestServer, tempfile::TempDir)> {
    let cli = reference_cli()?;
    Some((cli, TestServer::start().await, tempfile::tempdir().unwrap()))
}

/// The reference `dagster-cloud` CLI from `DAGSTER_CLOUD_REFERENCE`; `None` (with a notice)
/// outside CI when it is not set, a failure in CI.
pub fn reference_cli() -> Option<std::path::PathBuf> {
    match std::env::var_os("DAGSTER_CLOUD_REFERENCE") {
        Some(p) => Some(std::path::PathBuf::from(p)),
        None if std::env::var_os("CI").is_some() => {
            panic!("DAGSTER_CLOUD_REFERENCE must point at the dagster-cloud executable in CI")
        }
        None => {
            eprintln!(
                "notice: skipping reference CLI test: set DAGSTER_CLOUD_REFERENCE to the \
                 dagster-cloud executable to run it"
            );
            None
        }
    }
}

/// `program args` with a clean environment (no CI variables, no user config, `home` as HOME
/// and working folder) plus `env`.
pub fn clean_command(
    program: &std::path::Path,
    home: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("LANG", "C.UTF-8")
        .env("DAGSTER_CLOUD_CLI_CONFIG", home.join("no-config.yaml"))
        .envs(env.iter().copied())
        .current_dir(home);
    cmd
}

/// Runs `clean_command` off the async threads and echoes its output (for failing tests).
pub async fn run_clean(
    program: &std::path::Path,
    home: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = clean_command(program, home, args, env);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    eprintln!(
        "$ {} {}\n{}{}",
        program.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `(operation type, root field, path, deployment header)` of each recorded request.
pub fn operations(server: &TestServer) -> Vec<(String, String, String, Option<String>)> {
    server
        .take_requests()
        .into_iter()
        .map(|r| {
            (
                r.operation_type.unwrap_or("?").to_string(),
                r.root_fields.join(","),
                r.path,
                r.deployment_header,
            )
        })
        .collect()
}

/// The locations document the server stores for `prod`.
pub fn stored(server: &TestServer) -> Value {
    server
        .server
        .deployments()
        .locations_document("prod")
        .unwrap()
}

/// The server answers an ordinary query.
pub async fn still_answers(s: &TestServer) {
    let data = s.client().data("{ __typename }", json!({})).await;
    assert_eq!(data["__typename"], "QueryRoot");
}

/// The first GraphQL error message of an answer.
pub fn message(body: &Value) -> String {
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Opens a connection to the server and writes `bytes` on it.
pub async fn send(s: &TestServer, bytes: &[u8]) -> tokio::net::TcpStream {
    let mut conn = tokio::net::TcpStream::connect(s.server.addr())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut conn, bytes)
        .await
        .unwrap();
    conn
}
