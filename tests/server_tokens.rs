//! Tokens: missing, wrong, revoked, deployment-scoped and organisation-scoped.

mod support;

use support::server as common;

use common::*;
use dagster_deploy::server::{self, TokenScope};
use serde_json::json;

#[tokio::test]
async fn missing_wrong_and_revoked_tokens_get_401() {
    let server = TestServer::start().await;
    let c = server.client();

    let (status, body) = c
        .with_token(None)
        .post("/graphql", LOCATIONS_AS_DOCUMENT, json!({}))
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"errors": [{"message": "Unauthorized: no API token; send one in the \
            Dagster-Cloud-Api-Token header (DAGSTER_CLOUD_API_TOKEN for dagster-cloud)"}]})
    );

    let (status, body) = c
        .with_token(Some("ddp_0000"))
        .post("/graphql", ADD_LOCATION, json!({"document": doc("a", "i")}))
        .await;
    assert_eq!(status, 401);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Unauthorized: the API token is not valid"),
        "{body}"
    );

    let d = server.server.deployments();
    let (info, token) = d
        .create_token(TokenScope::Organization, Some("ci"))
        .unwrap();
    let ok = c.with_token(Some(&token));
    let (status, _) = ok.post("/graphql", LOCATIONS_AS_DOCUMENT, json!({})).await;
    assert_eq!(status, 200);
    assert!(d.revoke_token(info.id).unwrap());
    let (status, _) = ok.post("/graphql", LOCATIONS_AS_DOCUMENT, json!({})).await;
    assert_eq!(status, 401);
    assert!(!d.revoke_token(info.id).unwrap(), "already revoked");
    assert!(d.locations("prod").unwrap().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn tokens_are_stored_only_as_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let token = server::create_token(dir.path(), TokenScope::Organization).unwrap();
    assert!(token.starts_with(server::TOKEN_PREFIX));
    let db = std::fs::read(dir.path().join(server::DATABASE_FILE)).unwrap();
    let wal = std::fs::read(dir.path().join(format!("{}-wal", server::DATABASE_FILE)))
        .unwrap_or_default();
    let contains = |hay: &[u8]| hay.windows(token.len()).any(|w| w == token.as_bytes());
    assert!(!contains(&db) && !contains(&wal));
    let d = server::Deployments::open(dir.path()).unwrap();
    let info = d.authenticate(&token).unwrap().unwrap();
    assert_eq!(info.scope, TokenScope::Organization);
    assert_eq!(info.label, format!("token-{}", info.id));
    assert!(d.authenticate("ddp_other").unwrap().is_none());
}

#[tokio::test]
async fn a_deployment_token_stays_in_its_deployment() {
    let server = TestServer::start().await;
    let d = server.server.deployments();
    d.create_deployment("staging").unwrap();
    let (_, token) = d
        .create_token(TokenScope::Deployment("staging".into()), Some("staging-ci"))
        .unwrap();
    let c = server.client().with_token(Some(&token));

    // Its own deployment, by header, by path, or by default.
    let own = c.with_deployment(Some("staging"));
    let data = own
        .data(ADD_LOCATION, json!({"document": doc("s", "i")}))
        .await;
    assert_eq!(
        data["addOrUpdateLocationFromDocument"]["__typename"],
        "WorkspaceEntry"
    );
    let (_, body) = c
        .with_deployment(None)
        .post("/staging/graphql", LOCATIONS_AS_DOCUMENT, json!({}))
        .await;
    assert_eq!(
        body["data"]["locationsAsDocument"]["document"]["locations"][0]["location_name"],
        "s"
    );
    let data = c
        .with_deployment(None)
        .data("query { currentDeployment { deploymentName } }", json!({}))
        .await;
    assert_eq!(data["currentDeployment"]["deploymentName"], "staging");

    // Another deployment: an UnauthorizedError where the answer has one, else an error.
    let other = c.with_deployment(Some("prod"));
    let data = other
        .data(ADD_LOCATION, json!({"document": doc("p", "i")}))
        .await;
    assert_eq!(
        data["addOrUpdateLocationFromDocument"],
        json!({"__typename": "UnauthorizedError", "message": "this API token is scoped to \
            deployment 'staging' and cannot access deployment 'prod'; use an organization \
            token or one for 'prod'"})
    );
    let (status, body) = other.post("/graphql", WORKSPACE_ENTRIES, json!({})).await;
    assert_eq!(status, 200);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("scoped to deployment 'staging'")
    );
    let (_, body) = c
        .with_deployment(None)
        .post(
            "/prod/graphql",
            DELETE_LOCATION,
            json!({"locationName": "s"}),
        )
        .await;
    assert_eq!(
        body["data"]["deleteLocation"]["__typename"],
        "UnauthorizedError"
    );

    // Organisation-level operations need an organisation token.
    let (_, body) = c
        .post(
            "/graphql",
            "query { organizationSettings { settings } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["message"],
        "reading organization settings needs an organization token; this API token is scoped \
         to deployment 'staging'"
    );
    let delete = "mutation($id: Int!) { deleteDeployment(deploymentId: $id) { __typename } }";
    let prod_id = d.deployment("prod").unwrap().id;
    let data = c.data(delete, json!({"id": prod_id})).await;
    assert_eq!(data["deleteDeployment"]["__typename"], "UnauthorizedError");
    let data = c
        .data("query { fullDeployments { deploymentName } }", json!({}))
        .await;
    assert_eq!(
        data["fullDeployments"],
        json!([{"deploymentName": "staging"}])
    );

    assert!(d.locations("prod").unwrap().is_empty());
    assert!(d.deployment("prod").is_ok());

    // The organisation token reaches both.
    let org = server.client();
    let data = org
        .with_deployment(Some("staging"))
        .data(LOCATIONS_AS_DOCUMENT, json!({}))
        .await;
    assert_eq!(
        data["locationsAsDocument"]["document"]["locations"][0]["location_name"],
        "s"
    );

    // Deleting a deployment revokes the tokens scoped to it.
    let staging_id = d.deployment("staging").unwrap().id;
    d.delete_deployment(staging_id).unwrap();
    let (status, _) = own.post("/graphql", LOCATIONS_AS_DOCUMENT, json!({})).await;
    assert_eq!(status, 401);
    server.stop().await;
}

#[test]
fn a_token_for_a_missing_deployment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = server::create_token(dir.path(), TokenScope::Deployment("nope".into())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "deployment 'nope' does not exist (existing deployments: prod); create it first or \
         check the deployment name"
    );
}

/// `Authorization: Bearer` works as the token header does, and neither is ever recorded.
#[tokio::test]
async fn bearer_tokens_are_accepted_and_never_recorded() {
    let server = TestServer::start().await;
    let (status, body) = {
        let resp = reqwest::Client::new()
            .post(format!("{}/graphql", server.url()))
            .header("Content-Type", "application/json")
            .header("Authorization", format!("Bearer {}", server.token))
            .header("Dagster-Cloud-Deployment", "prod")
            .body(json!({"query": "{ locationsAsDocument { document } }"}).to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    };
    assert_eq!(status, 200, "{body}");
    let requests = server.take_requests();
    let recorded = &requests.last().unwrap().headers;
    assert_eq!(recorded["authorization"], "<redacted>");
    assert!(!format!("{requests:?}").contains(&server.token));
    server.stop().await;
}
