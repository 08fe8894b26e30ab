//! A registry with token authentication, as ghcr.io, GitLab's and Harbor's are: the CNCF
//! registry configured with `auth: token`, and a token server in the test that checks the
//! password and signs ES256 tokens. Each client gets its own tokens with the credentials we
//! give it: our registry client (the reuse check), BuildKit through the session (the cache
//! import from `-latest`) and the engine (the push).
//!
//! Needs `scripts/services.sh start` (the engine, `docker-registry`) and `openssl`.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};
use support::{Cleanup, Monorepo, Run, clean_pushed, free_port, services, unique};

const SERVICE: &str = "token-test-registry";
const ISSUER: &str = "token-test-issuer";

/// What the token server saw: `(user agent, scope)` of each request it granted.
type Granted = Arc<Mutex<Vec<(String, String)>>>;

struct TokenServer {
    key: EcdsaKeyPair,
    /// The certificate (DER) the registry trusts, sent in each token's `x5c` header.
    cert: Vec<u8>,
    basic: String,
    granted: Granted,
}

/// The registry process; stopped when dropped.
struct TokenRegistry {
    child: Child,
    addr: String,
    granted: Granted,
    _dir: tempfile::TempDir,
}

impl Drop for TokenRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Docker's token request: `GET /token?service=..&scope=..` with basic credentials.
async fn token(
    State(server): State<Arc<TokenServer>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, StatusCode> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != server.basic {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut access = Vec::new();
    for (key, scope) in &query {
        if key != "scope" {
            continue;
        }
        server
            .granted
            .lock()
            .unwrap()
            .push((agent.clone(), scope.clone()));
        // `repository:NAME:pull,push`
        let mut parts = scope.splitn(3, ':');
        if let (Some(kind), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next())
        {
            let actions: Vec<&str> = actions.split(',').collect();
            access.push(json!({"type": kind, "name": name, "actions": actions}));
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [STANDARD.encode(&server.cert)]});
    let claims = json!({
        "iss": ISSUER, "sub": "ci", "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
        "iat": now, "jti": unique("jti"), "access": access,
    });
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let rng = ring::rand::SystemRandom::new();
    let signature = server.key.sign(&rng, signed.as_bytes()).unwrap();
    let jwt = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()));
    Ok(axum::Json(
        json!({"token": jwt, "access_token": jwt, "expires_in": 300}),
    ))
}

/// Starts a token server and a registry that trusts it, for `user`/`password`.
async fn token_registry(user: &str, password: &str) -> TokenRegistry {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "key.pem",
        ],
    );
    openssl(
        d,
        &[
            "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out", "key.p8",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=token-test",
        ],
    );
    openssl(
        d,
        &[
            "x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der",
        ],
    );
    let rng = ring::rand::SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &std::fs::read(d.join("key.p8")).unwrap(),
        &rng,
    )
    .unwrap();
    let granted = Granted::default();
    let server = Arc::new(TokenServer {
        key,
        cert: std::fs::read(d.join("cert.der")).unwrap(),
        basic: format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))),
        granted: granted.clone(),
    });
    // Only GET: a POST (OAuth2 form) answers 405, and clients fall back to GET as they do
    // with most registries.
    let app = axum::Router::new()
        .route("/token", axum::routing::get(token))
        .with_state(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let realm = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let port = free_port();
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {data}\n\
         http:\n  addr: 127.0.0.1:{port}\nauth:\n  token:\n    realm: {realm}\n    \
         service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {cert}\n",
        data = d.join("data").display(),
        cert = d.join("cert.pem").display(),
    );
    std::fs::write(d.join("config.yml"), config).unwrap();
    let log = std::fs::File::create(d.join("registry.log")).unwrap();
    let child = Command::new("docker-registry")
        .args(["serve", "config.yml"])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start docker-registry (package docker-registry)");
    let registry = TokenRegistry {
        child,
        addr: format!("localhost:{port}"),
        granted,
        _dir: dir,
    };
    // Up when /v2/ asks for a bearer token.
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{port}/v2/"))
            .send()
            .await
        {
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            assert!(challenge.starts_with("Bearer realm="), "{challenge}");
            return registry;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(registry._dir.path().join("registry.log")).unwrap();
    panic!("the token registry did not start:\n{log}");
}

fn result<'a>(json: &'a Value, location: &str) -> &'a Value {
    json["results"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["location"] == location))
        .unwrap_or_else(|| panic!("no result for {location}: {json:#}"))
}

// Several threads: the token server answers while the test waits on the command.
#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_check_import_cache_and_push_with_registry_tokens() {
    let Some(s) = services().await else { return };
    let mut cleanup = Cleanup::new(&s);
    let user = "ci-bot";
    let password = unique("token-registry-password");
    let registry = token_registry(user, &password).await;
    let repo = format!("{}/{}", registry.addr, unique("token-test/app"));
    let m = Monorepo::new();
    m.write(
        "dagster_cloud.yaml",
        &format!(
            "locations:\n  - location_name: app\n    code_source: {{module_name: app}}\n    \
             build: {{directory: app, registry: {repo}}}\n"
        ),
    );
    let marker = unique("token-deps");
    m.write(
        "app/Dockerfile",
        &format!(
            "FROM {}\nRUN echo {marker} > /deps\nCOPY code.txt /code.txt\n",
            s.base_image
        ),
    );
    m.write("app/code.txt", "one\n");
    m.commit("app");
    let build = |m: &Monorepo, password: &str| {
        let mut cmd = m.command(&s, &["build", "--all", "--json"]);
        cmd.env("DAGSTER_DEPLOY_REGISTRY_USERNAME", user)
            .env("DAGSTER_DEPLOY_REGISTRY_PASSWORD", password);
        Run::of(&mut cmd)
    };

    let first = build(&m, &password);
    let json = first.json();
    clean_pushed(&mut cleanup, &json);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(result(&json, "app")["status"], "built", "{json:#}");
    assert!(!first.stderr.contains(&password));

    // Our registry client finds the content-key tag behind a token: reused.
    let again = build(&m, &password);
    assert_eq!(
        result(&again.json(), "app")["status"],
        "reused",
        "{}",
        again.stderr
    );

    // A code change on an engine without the images imports the cache from `app-latest` in
    // this registry (BuildKit prefers a local image of that name).
    let local = s.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}", &repo]);
    for image in local.lines() {
        s.docker(&["rmi", image]);
    }
    m.write("app/code.txt", "two\n");
    m.commit("code");
    let second = build(&m, &password);
    let json = second.json();
    clean_pushed(&mut cleanup, &json);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let app = result(&json, "app");
    assert_eq!(app["status"], "built", "{json:#}");
    assert!(app["cached_steps"].as_u64().unwrap() >= 1, "{json:#}");

    let granted = registry.granted.lock().unwrap().clone();
    let agents: HashMap<String, Vec<String>> =
        granted
            .iter()
            .fold(HashMap::new(), |mut by_agent, (agent, scope)| {
                by_agent
                    .entry(agent.clone())
                    .or_default()
                    .push(scope.clone());
                by_agent
            });
    let name = repo.split_once('/').unwrap().1;
    let push_scope = format!("repository:{name}:push,pull");
    assert!(
        granted.iter().any(|(_, scope)| *scope == push_scope),
        "{agents:#?}"
    );
    // BuildKit's resolver (containerd's) for the cache import, the engine for the pushes.
    assert!(
        agents.keys().any(|a| a.starts_with("containerd/")),
        "BuildKit fetched no token: {agents:#?}\n{}",
        second.stderr
    );
    assert!(
        agents.keys().any(|a| a.starts_with("docker/")),
        "{agents:#?}"
    );

    // Wrong credentials: the location fails at its first registry request, saying the token
    // endpoint refused them, and no password is shown.
    m.write("app/code.txt", "three\n");
    m.commit("wrong");
    let wrong = build(&m, "not-the-password");
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    let wrong_json = wrong.json();
    let failure = &result(&wrong_json, "app")["failure"];
    assert_eq!(failure["step"], "check", "{failure:#}");
    assert!(
        failure["message"]
            .as_str()
            .unwrap()
            .contains("token endpoint of the registry localhost:")
            && failure["message"]
                .as_str()
                .unwrap()
                .contains("refused the configured credentials"),
        "{failure:#}"
    );
    assert!(!wrong.stderr.contains(&password) && !wrong.stdout.contains(&password));
}
