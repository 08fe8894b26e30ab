//! The attacks of issue 10 on an in-process server about request limits (findings 1 to 4),
//! one test per finding: each performs the attack and asserts it now fails safely (the right
//! status, the server still answering, the data intact). Tokens, files and the data folder are
//! in `server_hardening_data.rs`, process-level findings in `server_hardening_process.rs`.

mod support;

use support::server as common;

use std::time::Duration;

use common::*;
use dagster_deploy::server::{
    Actor, ApplyMode, ConnectionLimits, HistoryPage, LocationChange, RevisionAction,
};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
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
