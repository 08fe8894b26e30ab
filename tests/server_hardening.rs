//! The attacks of issue 10 on an in-process server, one test per finding: each performs the
//! attack and asserts it now fails safely (the right status, the server still answering, the
//! data intact). Process-level findings (signals, files, the CLI, logs) are in
//! `server_hardening_process.rs`.

#[path = "support/server.rs"]
mod common;

use std::time::Duration;

use common::*;
use dagster_deploy::server::{
    self, Actor, ApplyMode, ConnectionLimits, HistoryPage, LocationChange, RevisionAction,
    ServeOptions, TokenScope,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Hang detector for reads that must end (not a timing assertion).
const PATIENCE: Duration = Duration::from_secs(30);

fn short_limits() -> ConnectionLimits {
    ConnectionLimits {
        max_connections: 8,
        header_timeout: Duration::from_millis(500),
        body_timeout: Duration::from_millis(500),
        shutdown_grace: Duration::from_millis(500),
    }
}

/// The server answers an ordinary query.
async fn still_answers(s: &TestServer) {
    let data = s.client().data("{ __typename }", json!({})).await;
    assert_eq!(data["__typename"], "QueryRoot");
}

fn message(body: &Value) -> String {
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Reads an HTTP answer's head (status line and headers) or until the peer closes; `None` if
/// the connection closed without an answer.
async fn read_head(conn: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = tokio::time::timeout(PATIENCE, async {
        loop {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server neither answered nor closed");
    (!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).into_owned())
}

fn status_of(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"))
}

fn nested(open: &str, close: &str, depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

// ---- 1. deep values -------------------------------------------------------------------

#[tokio::test]
async fn f1_deeply_nested_values_are_refused_before_parsing() {
    let s = TestServer::start().await;
    let c = s.client();
    let list = nested("[", "]", 1700, "1");
    let object = nested("{a: ", "}", 1700, "1");
    let attacks = [
        format!("{{ __typename(x: {list}) }}"),
        format!("mutation {{ deployLocations(document: {object}) {{ __typename }} }}"),
        format!("{{ __typename @include(if: {list}) }}"),
        format!("query Q($v: Int = {list}) {{ __typename }}"),
    ];
    for query in &attacks {
        let (status, body) = c.post("/graphql", query, json!({})).await;
        assert_eq!(status, 400, "{body}");
        assert!(message(&body).contains("nests brackets"), "{body}");
        still_answers(&s).await;
    }
    // Deep variables stop at the JSON parser's own limit, with a 400.
    let deep_json = nested("{\"a\":", "}", 1700, "1");
    let body = format!(
        "{{\"query\":\"mutation($d: GenericScalar!) {{ deployLocations(document: $d) {{ __typename }} }}\",\"variables\":{{\"d\":{deep_json}}}}}"
    );
    let (status, body) = c.post_raw("/graphql", body.into_bytes()).await;
    assert_eq!(status, 400, "{body}");
    still_answers(&s).await;
    assert!(s.server.deployments().locations("prod").unwrap().is_empty());
    s.stop().await;
}

// ---- 2. one stored location breaks a deployment ----------------------------------------

fn deep_value(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!({ "a": v });
    }
    v
}

#[tokio::test]
async fn f2_deep_documents_are_refused_and_a_damaged_one_breaks_only_itself() {
    let s = TestServer::start().await;
    let c = s.client();
    let good = doc("good", "r/good:1");
    c.data(DEPLOY_LOCATIONS, json!({"document": {"locations": [good]}}))
        .await;

    // On write: refused with the location named, nothing stored.
    let mut deep = doc("deep", "r/deep:1");
    deep["defs_state_info"] = deep_value(40);
    let data = c
        .data(DEPLOY_LOCATIONS, json!({"document": {"locations": [deep]}}))
        .await;
    let result = &data["deployLocations"];
    assert_eq!(result["__typename"], "InvalidLocationError", "{data}");
    let errors = result["errors"].to_string();
    assert!(
        errors.contains("location 'deep'") && errors.contains("levels deep"),
        "{errors}"
    );

    // A document the reader cannot parse (stored by an older server) damages only itself.
    let d = s.server.deployments();
    let prod = d.deployment("prod").unwrap();
    let mut damaged = doc("damaged", "r/damaged:1");
    damaged["defs_state_info"] = deep_value(150);
    for document in [doc("damaged", "r/damaged:0"), damaged] {
        d.store()
            .apply_locations(
                prod.id,
                &[LocationChange::Put {
                    name: "damaged".into(),
                    document,
                    action: RevisionAction::Registered,
                }],
                ApplyMode::Merge,
                &Actor::local("test"),
            )
            .unwrap()
            .unwrap();
    }
    let data = c.data(LOCATIONS_AS_DOCUMENT, json!({})).await;
    let names: Vec<&str> = data["locationsAsDocument"]["document"]["locations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["location_name"].as_str())
        .collect();
    assert_eq!(names, ["good", "damaged"], "{data}");
    let data = c.data(WORKSPACE_OR_ERROR, json!({})).await;
    let entries = data["workspaceOrError"]["locationEntries"]
        .as_array()
        .unwrap();
    assert_eq!(
        entries[0]["locationOrLoadError"]["__typename"],
        "RepositoryLocation"
    );
    let err = &entries[1]["locationOrLoadError"];
    assert_eq!(err["__typename"], "PythonError");
    let text = err["message"].as_str().unwrap();
    assert!(text.contains("location 'damaged' cannot be read"), "{text}");

    // Its history reads, and rollback goes back to the last readable document.
    let history = d.history("prod", "damaged", Default::default()).unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[1].damaged.is_some() && history[1].document.is_none());
    let rev = d
        .rollback("prod", "damaged", None, &Actor::local("test"))
        .unwrap();
    assert_eq!(rev.document.unwrap()["image"], "r/damaged:0");
    still_answers(&s).await;
    s.stop().await;
}

// ---- 3. amplification -------------------------------------------------------------------

#[tokio::test]
async fn f3_aliases_fields_cost_and_answer_size_are_bounded() {
    let s = TestServer::start().await;
    let c = s.client();
    c.data(ADD_LOCATION, json!({"document": doc("a", "r/a:1")}))
        .await;
    let aliases = |n: usize| -> String {
        (0..n)
            .map(|i| format!("a{i}: locationsAsDocument {{ document }} "))
            .collect()
    };

    let (status, body) = c
        .post("/graphql", &format!("{{ {} }}", aliases(1000)), json!({}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("aliased fields"), "{body}");

    // Few enough aliases, too much cost.
    let (status, body) = c
        .post("/graphql", &format!("{{ {} }}", aliases(20)), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(message(&body), "Query is too complex.", "{body}");
    assert!(body.get("data").is_none_or(Value::is_null), "{body}");

    // A fragment bomb (2^30 fields once expanded) is cut off at the budget.
    let mut bomb = String::from("query { ...f0 }\n");
    for i in 0..30 {
        bomb.push_str(&format!(
            "fragment f{i} on Query {{ ...f{} ...f{} }}\n",
            i + 1,
            i + 1
        ));
    }
    bomb.push_str("fragment f30 on Query { locationsAsDocument { document } }\n");
    let (status, body) = c.post("/graphql", &bomb, json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("more than 1000 fields"), "{body}");

    // What a deployment stores is bounded, and so is what one request may read of it: an
    // answer above the cap is refused, not sent.
    let d = s.server.deployments();
    let big = |i: usize| {
        let mut l = doc(&format!("big{i}"), "r/big:1");
        l["container_context"] =
            json!({"docker": {"env_vars": ["X=".to_string() + &"y".repeat(250_000)]}});
        l
    };
    let actor = Actor::local("test");
    for chunk in (0..25).map(big).collect::<Vec<_>>().chunks(5) {
        d.deploy_locations("prod", &json!({ "locations": chunk }), &actor)
            .unwrap();
    }
    let three = format!("{{ {} }}", aliases(3));
    let (status, body) = c.post("/graphql", &three, json!({})).await;
    assert_eq!(status, 422);
    assert!(
        message(&body).contains("above this server's limit"),
        "{body}"
    );
    let more: Vec<Value> = (25..60).map(big).collect();
    let data = c
        .data(DEPLOY_LOCATIONS, json!({"document": {"locations": more}}))
        .await;
    let result = &data["deployLocations"];
    assert_eq!(result["__typename"], "InvalidLocationError");
    assert!(
        result["errors"]
            .to_string()
            .contains("bytes of location documents"),
        "{result}"
    );
    assert_eq!(d.locations("prod").unwrap().len(), 26);

    // A page of history stops at its byte budget (the client pages on with `before`).
    for _ in 0..40 {
        d.add_or_update_location("prod", big(0), &actor).unwrap();
    }
    let page = HistoryPage {
        before: None,
        limit: Some(100),
    };
    let revs = d.history("prod", "big0", page).unwrap();
    assert!((1..40).contains(&revs.len()), "{} revisions", revs.len());
    still_answers(&s).await;
    s.stop().await;
}

// ---- 4. body before authentication, timeouts, connections, shutdown ---------------------

async fn send(s: &TestServer, bytes: &[u8]) -> TcpStream {
    let mut conn = TcpStream::connect(s.server.addr()).await.unwrap();
    conn.write_all(bytes).await.unwrap();
    conn
}

#[tokio::test]
async fn f4_no_body_is_read_before_the_token_and_the_size_are_checked() {
    let s = TestServer::start_opts(|o| o.limits = short_limits()).await;
    let addr = s.server.addr();
    // Headers only; the 100 MB never come. Both are answered at once.
    let mut conn = send(
        &s,
        format!("POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 104857600\r\n\r\n")
            .as_bytes(),
    )
    .await;
    let head = read_head(&mut conn).await.unwrap();
    assert_eq!(status_of(&head), 401, "{head}");
    let mut conn = send(
        &s,
        format!(
            "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nDagster-Cloud-Api-Token: {}\r\n\
             Content-Length: 104857600\r\n\r\n",
            s.token
        )
        .as_bytes(),
    )
    .await;
    let head = read_head(&mut conn).await.unwrap();
    assert_eq!(status_of(&head), 413, "{head}");
    // Uploads too.
    let mut conn = send(
        &s,
        format!(
            "PUT /blobs/deps-1.pex HTTP/1.1\r\nHost: {addr}\r\nDagster-Cloud-Api-Token: {}\r\n\
             Content-Length: 99999999999999\r\n\r\n",
            s.token
        )
        .as_bytes(),
    )
    .await;
    let head = read_head(&mut conn).await.unwrap();
    assert_eq!(status_of(&head), 413, "{head}");
    still_answers(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn f4_slow_headers_and_bodies_time_out() {
    let s = TestServer::start_opts(|o| o.limits = short_limits()).await;
    let addr = s.server.addr();
    // Half the headers: the connection is closed without an answer (or with 408).
    let mut conn = send(
        &s,
        format!("POST /graphql HTTP/1.1\r\nHost: {addr}\r\n").as_bytes(),
    )
    .await;
    if let Some(head) = read_head(&mut conn).await {
        assert_eq!(status_of(&head), 408, "{head}");
    }
    // An idle kept-alive connection is closed too.
    let mut conn = send(
        &s,
        format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    )
    .await;
    let head = read_head(&mut conn).await.unwrap();
    assert_eq!(status_of(&head), 200);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, conn.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the idle connection stayed open");
    // Ten bytes of a promised hundred: 408.
    let mut conn = send(
        &s,
        format!(
            "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nDagster-Cloud-Api-Token: {}\r\n\
             Content-Length: 100\r\n\r\n{{\"query\":",
            s.token
        )
        .as_bytes(),
    )
    .await;
    let head = read_head(&mut conn).await.unwrap();
    assert_eq!(status_of(&head), 408, "{head}");
    still_answers(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn f4_connections_beyond_the_cap_get_503_and_the_server_recovers() {
    let s = TestServer::start_opts(|o| {
        o.limits = ConnectionLimits {
            max_connections: 4,
            header_timeout: Duration::from_secs(2),
            ..short_limits()
        }
    })
    .await;
    let addr = s.server.addr();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(
            send(
                &s,
                format!("POST /graphql HTTP/1.1\r\nHost: {addr}\r\n").as_bytes(),
            )
            .await,
        );
    }
    // Give the server a moment to accept the four.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = send(
        &s,
        format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    )
    .await;
    let head = read_head(&mut extra).await.unwrap();
    assert_eq!(status_of(&head), 503, "{head}");
    // Once the slow ones time out, everyone is served again.
    for conn in &mut held {
        let _ = read_head(conn).await;
    }
    still_answers(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn f4_shutdown_finishes_despite_a_stuck_client() {
    let s = TestServer::start_opts(|o| {
        o.limits = ConnectionLimits {
            body_timeout: Duration::from_secs(600),
            header_timeout: Duration::from_secs(600),
            ..short_limits()
        }
    })
    .await;
    let addr = s.server.addr();
    let _stuck = send(
        &s,
        format!(
            "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nDagster-Cloud-Api-Token: {}\r\n\
             Content-Length: 100\r\n\r\n{{",
            s.token
        )
        .as_bytes(),
    )
    .await;
    let _idle = send(&s, b"GET /hea").await;
    still_answers(&s).await;
    let stopped = tokio::time::timeout(PATIENCE, s.server.shutdown()).await;
    assert!(matches!(stopped, Ok(Ok(()))), "shutdown hung or failed");
}

// ---- 5. blobs are per deployment and bound to their content ------------------------------

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

// ---- 6. no probing through image checks -----------------------------------------------

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

// ---- 7. an outside writer stalls nothing but writes -------------------------------------

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

// ---- 8. files and leftovers ---------------------------------------------------------------

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

// ---- 9. tokens: revocation is immediate (the CLI side is in server_hardening_process.rs) --

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

// ---- 11. small leaks ----------------------------------------------------------------------

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
