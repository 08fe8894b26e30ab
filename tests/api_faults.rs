//! Fault injection against the client: a fake HTTP server (wiremock, or a raw socket for
//! connection resets) answers with transient failures, errors inside 200 answers,
//! maintenance and timeouts. Each test counts what reached the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dagster_deploy::api::wait::{LoadResult, WaitOptions, wait_for_load};
use dagster_deploy::api::{ApiError, ApiToken, Client, ClientOptions, ops};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "ddp_fault_secret";

fn options() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(5),
        max_retries: 3,
        backoff: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(2),
    }
}

fn client(base: &str, opts: ClientOptions) -> Client {
    Client::new(base, ApiToken::new(TOKEN).unwrap(), Some("prod"), opts).unwrap()
}

fn ok_list() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"data": {"locationsAsDocument": {
        "__typename": "LocationsAsDocument",
        "document": {"locations": [{"location_name": "a", "git": {"commit_hash": "abc"}}]}
    }}}))
}

fn deployed() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"data": {"deployLocations": {
        "__typename": "DeployLocationsSuccess", "locations": [{"locationName": "a"}]
    }}}))
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap_or_default().len()
}

#[tokio::test]
async fn a_503_is_retried_then_succeeds_with_the_protocol_headers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/graphql"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/graphql"))
        .and(header("Dagster-Cloud-Api-Token", TOKEN))
        .and(header("Dagster-Cloud-Deployment", "prod"))
        .and(header("Dagster-Cloud-Scope", "deployment"))
        .and(header("Content-Type", "application/json"))
        .respond_with(ok_list())
        .mount(&server)
        .await;
    let docs = ops::current_documents(&client(&server.uri(), options()))
        .await
        .unwrap();
    assert_eq!(docs["a"]["git"]["commit_hash"], "abc");
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn a_429_waits_as_retry_after_says() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(deployed())
        .mount(&server)
        .await;
    // A mutation too: a 429 means it was not applied.
    let names = ops::deploy_locations(
        &client(&server.uri(), options()),
        &[json!({"location_name": "a"})],
    )
    .await
    .unwrap();
    assert_eq!(names, ["a"]);
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn persistent_502s_give_up_after_three_retries() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    let err = ops::current_documents(&client(&server.uri(), options()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "api-retries-exhausted", "{err}");
    assert_eq!(requests(&server).await, 4);
}

#[tokio::test]
async fn a_read_timeout_on_a_mutation_is_not_resent_but_a_query_is() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(deployed().set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let opts = ClientOptions {
        timeout: Duration::from_millis(500),
        ..options()
    };
    let c = client(&server.uri(), opts);
    let err = ops::deploy_locations(&c, &[json!({"location_name": "a"})])
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::MutationTimedOut { .. }), "{err}");
    assert!(err.to_string().contains("not sent again"), "{err}");
    assert_eq!(requests(&server).await, 1);

    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(ok_list().set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let err = ops::current_documents(&c).await.unwrap_err();
    assert_eq!(err.code(), "api-retries-exhausted", "{err}");
    assert_eq!(requests(&server).await, 4);
}

#[tokio::test]
async fn errors_inside_a_200_answer_are_reported_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "errors": [{"message": "Cannot query field \"deployLocations\""}]
        })))
        .mount(&server)
        .await;
    let err = ops::deploy_locations(
        &client(&server.uri(), options()),
        &[json!({"location_name": "a"})],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "api-graphql-error");
    assert!(err.to_string().contains("Cannot query field"), "{err}");
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn result_unions_become_clear_errors_without_the_token() {
    let server = MockServer::start().await;
    let answer = |body| ResponseTemplate::new(200).set_body_json(body);
    Mock::given(body_string_contains("deployLocations"))
        .respond_with(answer(json!({"data": {"deployLocations": {
            "__typename": "InvalidLocationError",
            "errors": ["location 'a': missing code_source"]
        }}})))
        .mount(&server)
        .await;
    Mock::given(body_string_contains("deleteLocation"))
        .respond_with(answer(json!({"data": {"deleteLocation": {
            "__typename": "PythonError",
            "message": format!("boom with {TOKEN}"),
            "stack": ["  File x\n"]
        }}})))
        .mount(&server)
        .await;
    Mock::given(body_string_contains("addOrUpdateLocationFromDocument"))
        .respond_with(answer(json!({"data": {"addOrUpdateLocationFromDocument": {
            "__typename": "UnauthorizedError", "message": "token scoped to dev"
        }}})))
        .mount(&server)
        .await;
    Mock::given(body_string_contains("locationsAsDocument"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"errors": [{"message": "Unauthorized: bad token"}]})),
        )
        .mount(&server)
        .await;
    let c = client(&server.uri(), options());
    let err = ops::deploy_locations(&c, &[json!({})]).await.unwrap_err();
    assert_eq!(err.code(), "api-invalid-location");
    assert!(err.to_string().contains("missing code_source"));
    let err = ops::delete_location(&c, "a").await.unwrap_err();
    assert_eq!(err.code(), "api-server-error");
    // A server that echoes the token back never gets it printed.
    assert!(err.to_string().contains("boom"));
    let err = ops::add_or_update_location(&c, &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "api-unauthorized");
    let err = ops::current_documents(&c).await.unwrap_err();
    assert_eq!(err.code(), "api-unauthorized");
    assert!(!format!("{err} {err:?} {c:?}").contains(TOKEN));
    assert_eq!(requests(&server).await, 4);
}

#[tokio::test]
async fn maintenance_answers_are_waited_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "maintenance": {"message": "upgrading", "timeout": 30, "retry_interval": 0.05}
        })))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ok_list())
        .mount(&server)
        .await;
    let c = client(&server.uri(), options());
    assert!(ops::current_documents(&c).await.is_ok());
    assert_eq!(requests(&server).await, 3);

    // Past its timeout, maintenance is an error naming it.
    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "maintenance": {"message": "upgrading", "timeout": 0, "retry_interval": 0.05}
        })))
        .mount(&server)
        .await;
    let err = ops::current_documents(&c).await.unwrap_err();
    assert_eq!(err.code(), "api-maintenance");
    assert!(err.to_string().contains("upgrading"));
}

#[tokio::test]
async fn a_server_that_is_down_is_reported_after_retries() {
    // A port nothing listens on: bind, note it, close.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = ops::current_documents(&client(&format!("http://{addr}"), options()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "api-retries-exhausted", "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    assert!(!err.hint().is_empty());
}

/// Accepts connections; resets the first `resets` right after reading the request, then
/// answers `body` with HTTP 200. Returns the URL and the connection count.
async fn resetting_server(resets: usize, body: serde_json::Value) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        // Bounded: a test makes at most a handful of connections.
        for _ in 0..16 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let mut buf = vec![0u8; 64 * 1024];
            let _ = stream.read(&mut buf).await;
            if n < resets {
                // Linger 0 sends a RST on close (and, being zero, never blocks).
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(Duration::ZERO));
                drop(stream);
                continue;
            }
            let text = body.to_string();
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
        }
    });
    (url, count)
}

#[tokio::test]
async fn a_connection_reset_is_retried_for_queries_but_not_for_mutations() {
    let body = json!({"data": {"locationsAsDocument": {"document": {"locations": []}}}});
    let (url, count) = resetting_server(1, body).await;
    let docs = ops::current_documents(&client(&url, options()))
        .await
        .unwrap();
    assert!(docs.is_empty());
    assert_eq!(count.load(Ordering::SeqCst), 2);

    let body = json!({"data": {"deployLocations": {"__typename": "DeployLocationsSuccess", "locations": []}}});
    let (url, count) = resetting_server(1, body).await;
    let err = ops::deploy_locations(&client(&url, options()), &[json!({})])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "api-unreachable", "{err}");
    assert!(err.to_string().contains("not sent again"), "{err}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn waiting_reports_load_errors_with_their_chain_and_missing_agents() {
    let server = MockServer::start().await;
    Mock::given(body_string_contains("agents"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": {"agents": [
                {"status": "RUNNING", "errors": []}
            ]}})),
        )
        .mount(&server)
        .await;
    Mock::given(body_string_contains("workspaceOrError"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {"workspaceOrError": {
            "__typename": "Workspace",
            "locationEntries": [
                {"name": "a", "loadStatus": "LOADED", "locationOrLoadError": {"__typename": "RepositoryLocation", "name": "a"}},
                {"name": "b", "loadStatus": "LOADED", "locationOrLoadError": {
                    "__typename": "PythonError", "message": "ImportError: no module b\n",
                    "stack": ["  File \"b.py\", line 1\n"],
                    "errorChain": [{"isExplicitLink": true, "error": {"message": "ModuleNotFoundError\n", "stack": ["  File \"c.py\"\n"]}}]
                }}
            ]
        }}})))
        .mount(&server)
        .await;
    let c = client(&server.uri(), options());
    let opts = WaitOptions::new(Duration::from_secs(30), Some(Duration::from_secs(30)));
    let results = wait_for_load(&c, &["a".into(), "b".into()], &opts, &|_| {})
        .await
        .unwrap();
    assert_eq!(results[0], ("a".to_string(), LoadResult::Loaded));
    let LoadResult::Failed(f) = &results[1].1 else {
        panic!("b should have failed: {results:?}")
    };
    let err = dagster_deploy::api::wait::failures_to_error(&results).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("Error loading b:"), "{text}");
    assert!(text.contains("The above exception was caused by the following exception:"));
    assert!(f.render().contains("File \"c.py\""));

    // No agent ever heartbeats: a clear error once the heartbeat timeout passes.
    server.reset().await;
    Mock::given(body_string_contains("agents"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": {"agents": [
                {"status": "NOT_RUNNING", "errors": []}
            ]}})),
        )
        .mount(&server)
        .await;
    let opts = WaitOptions {
        first_poll: Duration::from_millis(10),
        max_poll: Duration::from_millis(20),
        ..WaitOptions::new(Duration::from_secs(30), Some(Duration::from_millis(100)))
    };
    let err = wait_for_load(&c, &["a".into()], &opts, &|_| {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), "api-no-agent");
}
