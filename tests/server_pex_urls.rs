//! `generateServerlessPexUrl` and the blob routes it points at: pre-signed PUT/GET/HEAD,
//! SHA-256 checks, idempotent and interrupted uploads, token access, and the load status of a
//! Python-executable location.

mod support;

use support::server as common;

use base64::Engine as _;
use common::{ADD_LOCATION, TestServer, WORKSPACE_OR_ERROR};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const PUT_URLS: &str = "mutation GenerateServerlessPexUrlMutation($filenames: [String!]!) {
    generateServerlessPexUrl(filenames: $filenames, method:PUT) { url }
}";
const GET_URLS: &str = "mutation GenerateServerlessPexUrlMutation($filenames: [String!]!) {
    generateServerlessPexUrl(filenames: $filenames, method:GET) { url }
}";

async fn urls(s: &TestServer, query: &str, names: &[&str]) -> Vec<String> {
    let data = s.client().data(query, json!({ "filenames": names })).await;
    data["generateServerlessPexUrl"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["url"].as_str().unwrap().to_string())
        .collect()
}

fn checksum(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data))
}

#[tokio::test]
async fn put_then_get_through_presigned_urls() {
    let s = TestServer::start().await;
    let http = reqwest::Client::new();
    let put = urls(&s, PUT_URLS, &["deps-abc.pex", "source-def.pex"]).await;
    assert_eq!(put.len(), 2);
    assert!(
        put[0].starts_with(&format!("{}/blobs/deps-abc.pex?", s.url())),
        "{}",
        put[0]
    );
    let get = urls(&s, GET_URLS, &["deps-abc.pex"]).await;

    // Not there yet: HEAD and GET say 404.
    let head = http.head(&get[0]).send().await.unwrap();
    assert_eq!(head.status(), 404);

    let body = b"PK\x03\x04 pretend zip".to_vec();
    let resp = http
        .put(&put[0])
        .header("x-amz-checksum-sha256", checksum(&body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(
        resp.headers()["x-amz-checksum-sha256"].to_str().unwrap(),
        checksum(&body)
    );

    let head = http.head(&get[0]).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        body.len().to_string()
    );
    let got = http.get(&get[0]).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), body);

    // Uploading the same bytes again (a retry) is fine and changes nothing.
    let again = http.put(&put[0]).body(body.clone()).send().await.unwrap();
    assert_eq!(again.status(), 200);
    let objects = std::fs::read_dir(s.dir.path().join("blobs/objects")).unwrap();
    assert_eq!(objects.count(), 1);
    s.stop().await;
}

#[tokio::test]
async fn urls_are_bound_to_method_and_name_and_need_a_signature_or_token() {
    let s = TestServer::start().await;
    let http = reqwest::Client::new();
    let put = urls(&s, PUT_URLS, &["a.pex"]).await;
    let get = urls(&s, GET_URLS, &["a.pex"]).await;

    // A GET URL cannot upload, a PUT URL cannot download, and no URL works for another name.
    let r = http.put(&get[0]).body("x").send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = http.get(&put[0]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let other = put[0].replace("/blobs/a.pex?", "/blobs/b.pex?");
    let r = http.put(&other).body("x").send().await.unwrap();
    assert_eq!(r.status(), 403);
    let tampered = put[0].replace("expires=", "expires=9");
    let r = http.put(&tampered).body("x").send().await.unwrap();
    assert_eq!(r.status(), 403);

    // Without a signature: the API token allows, a wrong one does not.
    let bare = format!("{}/blobs/a.pex", s.url());
    let r = http.put(&bare).body("x").send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .put(&bare)
        .header("Dagster-Cloud-Api-Token", "nope")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .put(&bare)
        .header("Dagster-Cloud-Api-Token", &s.token)
        .body("with token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http.get(&get[0]).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "with token");

    // Asking for URLs needs a token too, and file names must be plain names.
    let (status, body) = s
        .client()
        .with_token(None)
        .post("/graphql", PUT_URLS, json!({"filenames": ["a.pex"]}))
        .await;
    assert_eq!(status, 401, "{body}");
    let (_, body) = s
        .client()
        .post(
            "/graphql",
            PUT_URLS,
            json!({"filenames": ["../etc/passwd"]}),
        )
        .await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("invalid file name"), "{body}");
    s.stop().await;
}

#[tokio::test]
async fn a_corrupted_upload_stores_nothing() {
    let s = TestServer::start().await;
    let http = reqwest::Client::new();
    let put = urls(&s, PUT_URLS, &["source-1.pex"]).await;
    let get = urls(&s, GET_URLS, &["source-1.pex"]).await;
    let r = http
        .put(&put[0])
        .header("x-amz-checksum-sha256", checksum(b"what was meant"))
        .body("what arrived")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("SHA-256"));
    assert_eq!(http.head(&get[0]).send().await.unwrap().status(), 404);
    let tmp = std::fs::read_dir(s.dir.path().join("blobs/tmp")).unwrap();
    assert_eq!(tmp.count(), 0);
    s.stop().await;
}

#[tokio::test]
async fn an_interrupted_upload_stores_nothing() {
    use tokio::io::AsyncWriteExt;
    let s = TestServer::start().await;
    let put = urls(&s, PUT_URLS, &["deps-2.pex"]).await;
    let get = urls(&s, GET_URLS, &["deps-2.pex"]).await;
    let path_and_query = put[0].strip_prefix(&s.url()).unwrap().to_string();
    // Announce 1 MB, send 10 bytes, hang up.
    let mut conn = tokio::net::TcpStream::connect(s.server.addr())
        .await
        .unwrap();
    let head = format!(
        "PUT {path_and_query} HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000000\r\n\r\n0123456789",
        s.server.addr()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.shutdown().await.unwrap();
    drop(conn);
    // Give the server a moment to see the connection end.
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let tmp = std::fs::read_dir(s.dir.path().join("blobs/tmp")).unwrap();
        if tmp.count() == 0 {
            break;
        }
    }
    let http = reqwest::Client::new();
    assert_eq!(http.head(&get[0]).send().await.unwrap().status(), 404);
    let tmp = std::fs::read_dir(s.dir.path().join("blobs/tmp")).unwrap();
    assert_eq!(tmp.count(), 0, "the partial upload was removed");
    s.stop().await;
}

fn load_of(data: &Value, name: &str) -> (String, Value) {
    let entries = data["workspaceOrError"]["locationEntries"]
        .as_array()
        .unwrap();
    let e = entries.iter().find(|e| e["name"] == name).unwrap();
    (
        e["loadStatus"].as_str().unwrap().to_string(),
        e["locationOrLoadError"].clone(),
    )
}

#[tokio::test]
async fn a_python_executable_location_loads_once_its_files_are_uploaded() {
    let s = TestServer::start().await;
    let client = s.client();
    let doc = json!({
        "location_name": "pexy",
        "code_source": {"module_name": "pexy"},
        "pex_metadata": {"pex_tag": "files=deps-9.pex:source-9.pex", "python_version": "3.11"},
    });
    let data = client.data(ADD_LOCATION, json!({ "document": doc })).await;
    assert_eq!(
        data["addOrUpdateLocationFromDocument"]["__typename"],
        "WorkspaceEntry"
    );
    let (_, err) = load_of(&client.data(WORKSPACE_OR_ERROR, json!({})).await, "pexy");
    assert_eq!(err["__typename"], "PythonError");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("deps-9.pex, source-9.pex") && message.contains("never uploaded"),
        "{message}"
    );

    let http = reqwest::Client::new();
    for url in urls(&s, PUT_URLS, &["deps-9.pex", "source-9.pex"]).await {
        let r = http.put(&url).body("zip").send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let (status, ok) = load_of(&client.data(WORKSPACE_OR_ERROR, json!({})).await, "pexy");
    assert_eq!(status, "LOADED");
    assert_eq!(ok["__typename"], "RepositoryLocation");
    s.stop().await;
}

#[tokio::test]
async fn serverless_reports_no_harbor_registry() {
    let s = TestServer::start().await;
    let data = s
        .client()
        .data(
            "query CliGetEcrInfo { serverless { awsRegion awsAuthToken \
             registryAllowCustomBase registryIsHarbor registryUrl } }",
            json!({}),
        )
        .await;
    assert_eq!(data["serverless"]["registryIsHarbor"], false);
    s.stop().await;
}
