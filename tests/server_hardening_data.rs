//! The attacks of issue 10 on an in-process server about tokens, files and the data folder
//! (findings 5 to 9 and 11): each performs the attack and asserts it now fails safely. The
//! request limits are in `server_hardening.rs`, process-level findings in
//! `server_hardening_process.rs`.

mod support;

use support::server as common;

use common::*;
use dagster_deploy::server::{self, ServeOptions, TokenScope};
use serde_json::{Value, json};

const PUT_URL: &str =
    "mutation($f: [String!]!) { generateServerlessPexUrl(filenames: $f, method: PUT) { url } }";

const GET_URL: &str =
    "mutation($f: [String!]!) { generateServerlessPexUrl(filenames: $f, method: GET) { url } }";

async fn url(c: &Client, query: &str, name: &str) -> String {
    let data = c.data(query, json!({ "f": [name] })).await;
    data["generateServerlessPexUrl"][0]["url"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn f5_a_staging_token_cannot_replace_or_read_production_files() {
    let s = TestServer::start().await;
    server::create_deployment(s.dir.path(), "staging").unwrap();
    let staging_token =
        server::create_token(s.dir.path(), TokenScope::Deployment("staging".into())).unwrap();
    let prod = s.client();
    let staging = s
        .client()
        .with_token(Some(&staging_token))
        .with_deployment(Some("staging"));
    let http = reqwest::Client::new();
    let name = "source-abc.pex";

    let r = http
        .put(url(&prod, PUT_URL, name).await)
        .body("prod code")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The staging token with prod's name: its URL is for staging's file, and the token
    // cannot reach prod's.
    let staging_put = url(&staging, PUT_URL, name).await;
    assert!(staging_put.contains("deployment=staging"), "{staging_put}");
    let tampered = staging_put.replace("deployment=staging", "deployment=prod");
    let r = http.put(&tampered).body("evil").send().await.unwrap();
    assert_eq!(r.status(), 403);
    let bare = format!("{}/blobs/{name}?deployment=prod", s.url());
    let r = http
        .put(&bare)
        .header("Dagster-Cloud-Api-Token", &staging_token)
        .body("evil")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .get(&bare)
        .header("Dagster-Cloud-Api-Token", &staging_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Staging's own file of that name is its own.
    let r = http
        .put(&staging_put)
        .body("staging code")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Within prod, a name keeps its content: other bytes are refused, the same are a retry.
    let prod_put = url(&prod, PUT_URL, name).await;
    let r = http.put(&prod_put).body("replaced").send().await.unwrap();
    assert_eq!(r.status(), 409);
    let r = http.put(&prod_put).body("prod code").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let got = http
        .get(url(&prod, GET_URL, name).await)
        .send()
        .await
        .unwrap();
    assert_eq!(got.text().await.unwrap(), "prod code");
    let got = http
        .get(url(&staging, GET_URL, name).await)
        .send()
        .await
        .unwrap();
    assert_eq!(got.text().await.unwrap(), "staging code");
    s.stop().await;
}

#[tokio::test]
async fn f6_images_are_checked_only_at_trusted_registries() {
    // A registry that is up and has the image, but is not trusted.
    let registry = FakeRegistry::start(false, &["x:1"]).await;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = TestServer::start_opts(|o| o.registry = Some(Default::default())).await;
    let c = s.client();
    let open = registry.image("x:1");
    let closed = format!("127.0.0.1:{closed_port}/x:1");
    c.data(ADD_LOCATION, json!({"document": doc("open", &open)}))
        .await;
    c.data(ADD_LOCATION, json!({"document": doc("closed", &closed)}))
        .await;
    let a = wait_loaded(&c, "open").await["locationOrLoadError"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    let b = wait_loaded(&c, "closed").await["locationOrLoadError"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(a.contains("does not check images in"), "{a}");
    // The two answers differ only by the address: nothing tells up from down.
    assert_eq!(
        a.replace(&registry.addr.to_string(), "H"),
        b.replace(&format!("127.0.0.1:{closed_port}"), "H")
    );
    assert!(
        registry.heads.lock().unwrap().is_empty(),
        "the untrusted registry was contacted"
    );
    s.stop().await;

    // Trusted with --registry: checked.
    let addr = registry.addr.to_string();
    let s = TestServer::start_opts(|o| {
        o.registry = Some(registry.access("secret"));
        o.trusted_registries = vec![addr];
    })
    .await;
    let c = s.client();
    c.data(ADD_LOCATION, json!({"document": doc("open", &open)}))
        .await;
    let e = wait_loaded(&c, "open").await;
    assert_eq!(
        e["locationOrLoadError"]["__typename"], "RepositoryLocation",
        "{e}"
    );
    assert!(!registry.heads.lock().unwrap().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn f7_reads_go_on_while_another_process_holds_the_write_lock() {
    let s = TestServer::start().await;
    let c = s.client();
    c.data(ADD_LOCATION, json!({"document": doc("a", "r/a:1")}))
        .await;
    let outside = rusqlite::Connection::open(s.dir.path().join(server::DATABASE_FILE)).unwrap();
    outside
        .execute_batch("BEGIN IMMEDIATE; UPDATE meta SET value = value;")
        .unwrap();

    still_answers(&s).await;
    let data = c.data(WORKSPACE_OR_ERROR, json!({})).await;
    assert_eq!(data["workspaceOrError"]["locationEntries"][0]["name"], "a");
    let data = c
        .data(ADD_LOCATION, json!({"document": doc("b", "r/b:1")}))
        .await;
    let result = &data["addOrUpdateLocationFromDocument"];
    assert_eq!(result["__typename"], "PythonError", "{data}");
    assert!(
        result["message"]
            .as_str()
            .unwrap()
            .contains("locked by another process"),
        "{data}"
    );

    outside.execute_batch("COMMIT").unwrap();
    let data = c
        .data(ADD_LOCATION, json!({"document": doc("b", "r/b:1")}))
        .await;
    assert_eq!(
        data["addOrUpdateLocationFromDocument"]["__typename"],
        "WorkspaceEntry"
    );
    assert_eq!(s.server.deployments().locations("prod").unwrap().len(), 2);
    s.stop().await;
}

#[cfg(unix)]
#[tokio::test]
async fn f8_the_data_folder_is_private_and_leftovers_are_cleaned() {
    use std::os::unix::fs::PermissionsExt;
    let s = TestServer::start().await;
    let c = s.client();
    c.data(ADD_LOCATION, json!({"document": doc("a", "r/a:1")}))
        .await;
    let r = reqwest::Client::new()
        .put(url(&c, PUT_URL, "deps-1.pex").await)
        .body("zip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let dir = s.dir.path().to_path_buf();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for file in walk(&dir) {
        let m = mode(&file);
        let expected = if file.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(m, expected, "{} is {m:o}", file.display());
    }
    // A temp file left by a killed upload is gone after a restart.
    let leftover = dir.join("blobs/tmp/0123abcd");
    std::fs::write(&leftover, "partial").unwrap();
    let token = s.token.clone();
    let dir_guard = s.dir;
    s.server.shutdown().await.unwrap();
    let opts = ServeOptions {
        registry: None,
        ..ServeOptions::new("127.0.0.1:0".parse().unwrap(), dir_guard.path())
    };
    let again = server::start(opts).await.unwrap();
    assert!(!leftover.exists());
    let (status, _) = Client {
        http: reqwest::Client::new(),
        base: again.url(),
        token: Some(token),
        deployment: None,
    }
    .post("/graphql", "{ __typename }", json!({}))
    .await;
    assert_eq!(status, 200);
    again.shutdown().await.unwrap();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[tokio::test]
async fn f8_a_busy_port_leaves_no_data_folder_and_open_errors_name_the_database() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("never-made");
    let err = server::start(ServeOptions::new(taken.local_addr().unwrap(), &data))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, server::ServerError::Bind { .. }), "{err}");
    assert!(
        !data.exists(),
        "the data folder was made before the port failed"
    );

    // A database that cannot be opened is named (here a folder in its place; as root, a
    // read-only folder would still be writable).
    let data = parent.path().join("data");
    std::fs::create_dir_all(data.join(server::DATABASE_FILE)).unwrap();
    let err = server::Deployments::open(&data).unwrap_err().to_string();
    assert!(
        err.contains("cannot open the database") && err.contains(server::DATABASE_FILE),
        "{err}"
    );
}

#[tokio::test]
async fn f9_a_revoked_token_fails_at_once() {
    let s = TestServer::start().await;
    let d = s.server.deployments();
    let (info, token) = d
        .create_token(TokenScope::Organization, Some("ci"))
        .unwrap();
    let c = s.client().with_token(Some(&token));
    assert_eq!(
        c.data("{ __typename }", json!({})).await["__typename"],
        "QueryRoot"
    );
    assert!(d.revoke_token(info.id).unwrap());
    let (status, body) = c.post("/graphql", "{ __typename }", json!({})).await;
    assert_eq!(status, 401, "{body}");
    still_answers(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn f11_errors_do_not_echo_queries_or_paths_and_urls_use_the_public_url() {
    let s =
        TestServer::start_opts(|o| o.public_url = Some("https://deploy.example.com/".into())).await;
    let c = s.client();
    let query = format!("{{ __typename {} (", "x".repeat(1_000_000));
    let (status, body) = c.post("/graphql", &query, json!({})).await;
    assert_eq!(status, 200);
    assert!(
        body.to_string().len() < 2_000,
        "{} bytes",
        body.to_string().len()
    );
    assert!(
        message(&body).starts_with("syntax error in the query at line 1"),
        "{body}"
    );

    // Pre-signed URLs ignore Host and X-Forwarded-Host.
    let r = reqwest::Client::new()
        .post(format!("{}/graphql", s.url()))
        .header("Dagster-Cloud-Api-Token", &s.token)
        .header("X-Forwarded-Host", "evil.example")
        .header("Host", "evil.example")
        .json(&json!({"query": PUT_URL, "variables": {"f": ["a.pex"]}}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let u = body["data"]["generateServerlessPexUrl"][0]["url"]
        .as_str()
        .unwrap();
    assert!(
        u.starts_with("https://deploy.example.com/blobs/a.pex?"),
        "{u}"
    );

    // A storage failure (here: the objects folder replaced by a file) names no server path.
    let objects = s.dir.path().join("blobs/objects");
    std::fs::remove_dir_all(&objects).unwrap();
    std::fs::write(&objects, "not a folder").unwrap();
    let put = format!("{}/blobs/b.pex", s.url());
    let r = reqwest::Client::new()
        .put(&put)
        .header("Dagster-Cloud-Api-Token", &s.token)
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let text = r.text().await.unwrap();
    assert!(
        !text.contains(&*s.dir.path().to_string_lossy()) && !text.contains('/'),
        "{text}"
    );
    still_answers(&s).await;
    s.stop().await;
}
