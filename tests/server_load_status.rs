//! The built-in agent's load status: LOADED when the image exists in its registry (checked
//! against a fake registry with bearer and basic auth), a load error naming the image when
//! it does not, LOADED at once for locations without an image.

mod support;

use support::server as common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn bearer_registry_present_and_missing_images() {
    let registry = FakeRegistry::start(true, &["app:present"]).await;
    let server = TestServer::start_with(Some(registry.access("secret"))).await;
    let c = server.client();

    let present = registry.image("app:present");
    c.data(ADD_LOCATION, json!({"document": doc("ok", &present)}))
        .await;
    let entry = wait_loaded(&c, "ok").await;
    assert_eq!(
        entry["locationOrLoadError"],
        json!({"__typename": "RepositoryLocation", "name": "ok"})
    );

    let missing = registry.image("app:missing");
    c.data(ADD_LOCATION, json!({"document": doc("gone", &missing)}))
        .await;
    let entry = wait_loaded(&c, "gone").await;
    assert_eq!(entry["locationOrLoadError"]["__typename"], "PythonError");
    assert_eq!(
        entry["locationOrLoadError"]["message"],
        format!(
            "image '{missing}' was not found in registry {} (no manifest for app:missing); push \
             it before registering the location",
            registry.addr
        )
    );
    assert_eq!(entry["locationOrLoadError"]["errorChain"], json!([]));

    // Every HEAD asks for OCI and Docker manifests.
    let heads = registry.heads.lock().unwrap().clone();
    assert!(heads.iter().all(|(accept, _)| {
        accept.contains("application/vnd.oci.image.manifest.v1+json")
            && accept.contains("application/vnd.docker.distribution.manifest.v2+json")
    }));

    // Results are cached per image: polling and re-registering a present image do not check
    // again.
    let authorised = |r: &FakeRegistry| r.heads.lock().unwrap().iter().filter(|h| h.1).count();
    let before = authorised(&registry);
    c.data(WORKSPACE_OR_ERROR, json!({})).await;
    c.data(ADD_LOCATION, json!({"document": doc("ok2", &present)}))
        .await;
    let entry = wait_loaded(&c, "ok2").await;
    assert_eq!(
        entry["locationOrLoadError"]["__typename"],
        "RepositoryLocation"
    );
    assert_eq!(authorised(&registry), before);
    server.stop().await;
}

#[tokio::test]
async fn basic_auth_registry_and_rejected_credentials() {
    let registry = FakeRegistry::start(false, &["app:1"]).await;
    let server = TestServer::start_with(Some(registry.access("secret"))).await;
    let c = server.client();
    c.data(
        ADD_LOCATION,
        json!({"document": doc("a", &registry.image("app:1"))}),
    )
    .await;
    let entry = wait_loaded(&c, "a").await;
    assert_eq!(
        entry["locationOrLoadError"]["__typename"],
        "RepositoryLocation"
    );
    server.stop().await;

    let server = TestServer::start_with(Some(registry.access("wrong"))).await;
    let c = server.client();
    let image = registry.image("app:1");
    c.data(ADD_LOCATION, json!({"document": doc("a", &image)}))
        .await;
    let entry = wait_loaded(&c, "a").await;
    assert_eq!(
        entry["locationOrLoadError"]["message"],
        format!(
            "could not check that image '{image}' exists in registry {}: the registry refused \
             the configured credentials (HTTP 401)",
            registry.addr
        )
    );
    server.stop().await;
}

#[tokio::test]
async fn locations_without_images_load_at_once() {
    let registry = FakeRegistry::start(true, &[]).await;
    let server = TestServer::start_with(Some(registry.access("secret"))).await;
    let c = server.client();
    let pex = json!({"location_name": "p", "code_source": {"package_name": "p"},
        "pex_metadata": {"pex_tag": "files=deps-1.pex:source-2.pex", "python_version": "3.11"}});
    c.data(ADD_LOCATION, json!({"document": pex})).await;
    let data = c.data(WORKSPACE_OR_ERROR, json!({})).await;
    assert_eq!(
        data["workspaceOrError"]["locationEntries"][0]["loadStatus"],
        "LOADED"
    );
    assert!(registry.heads.lock().unwrap().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn an_unreachable_registry_is_a_load_error() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Credentials make the registry one the server trusts (others are never contacted).
    let access = dagster_deploy::server::RegistryAccess {
        credentials: vec![dagster_deploy::server::RegistryCredentials {
            registry: format!("127.0.0.1:{port}"),
            username: "user".into(),
            password: "secret".into(),
        }],
        ..Default::default()
    };
    let server = TestServer::start_with(Some(access)).await;
    let c = server.client();
    let image = format!("127.0.0.1:{port}/app:1");
    c.data(ADD_LOCATION, json!({"document": doc("a", &image)}))
        .await;
    let entry = wait_loaded(&c, "a").await;
    assert_eq!(
        entry["locationOrLoadError"]["message"],
        format!(
            "could not check that image '{image}' exists in registry 127.0.0.1:{port}: cannot \
             connect to the registry"
        )
    );
    server.stop().await;
}
