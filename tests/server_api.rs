//! Every protocol operation through HTTP against the in-process server.

mod support;

use support::server as common;

use common::*;
use dagster_deploy::server::HistoryPage;
use serde_json::{Value, json};

#[tokio::test]
async fn location_operations_round_trip() {
    let server = TestServer::start().await;
    let c = server.client();

    let data = c
        .data(ADD_LOCATION, json!({"document": doc("a", "img/a:1")}))
        .await;
    assert_eq!(
        data["addOrUpdateLocationFromDocument"],
        json!({"__typename": "WorkspaceEntry", "locationName": "a"})
    );

    let deploy = json!({"locations": [doc("b", "img/b:1"), doc("a", "img/a:2")]});
    let data = c.data(DEPLOY_LOCATIONS, json!({"document": deploy})).await;
    assert_eq!(
        data["deployLocations"],
        json!({"__typename": "DeployLocationsSuccess",
               "locations": [{"locationName": "b"}, {"locationName": "a"}]})
    );

    // Registration order is kept; an update keeps its place.
    let data = c.data(LOCATIONS_AS_DOCUMENT, json!({})).await;
    assert_eq!(
        data["locationsAsDocument"],
        json!({"__typename": "LocationsAsDocument",
               "document": {"locations": [doc("a", "img/a:2"), doc("b", "img/b:1")]}})
    );

    let data = c.data(WORKSPACE_ENTRIES, json!({})).await;
    let entries = data["workspace"]["workspaceEntries"].as_array().unwrap();
    assert_eq!(entries[0]["locationName"], "a");
    let metadata: Value =
        serde_json::from_str(entries[0]["serializedDeploymentMetadata"].as_str().unwrap()).unwrap();
    assert_eq!(metadata["__class__"], "CodeDeploymentMetadata");
    assert_eq!(metadata["image"], "img/a:2");
    assert_eq!(metadata["module_name"], "a");
    assert_eq!(
        metadata["git_metadata"],
        json!({"__class__": "GitMetadata", "commit_hash": "abc", "url": null})
    );

    let data = c.data(WORKSPACE_OR_ERROR, json!({})).await;
    assert_eq!(
        data["workspaceOrError"]["locationEntries"][1],
        json!({"__typename": "WorkspaceLocationEntry", "name": "b", "loadStatus": "LOADED",
               "locationOrLoadError": {"__typename": "RepositoryLocation", "name": "b"}})
    );

    let reconcile = json!({"locations": [
        {"location_name": "c", "code_source": {"python_file": "c.py"},
         "build": {"directory": "c", "registry": "img/c"}},
        doc("b", "img/b:1"),
    ]});
    let data = c.data(RECONCILE, json!({"document": reconcile})).await;
    assert_eq!(
        data["reconcileLocationsFromDocument"],
        json!({"__typename": "ReconcileLocationsSuccess",
               "locations": [{"locationName": "c"}, {"locationName": "b"}]})
    );
    let names: Vec<_> = server
        .server
        .deployments()
        .locations("prod")
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, ["b", "c"], "a was removed by the reconcile");

    let data = c.data(DELETE_LOCATION, json!({"locationName": "b"})).await;
    assert_eq!(
        data["deleteLocation"],
        json!({"__typename": "DeleteLocationSuccess", "locationName": "b"})
    );
    let data = c.data(DELETE_LOCATION, json!({"locationName": "b"})).await;
    assert_eq!(data["deleteLocation"]["__typename"], "PythonError");
    assert_eq!(
        data["deleteLocation"]["message"],
        "location 'b' does not exist in deployment 'prod'"
    );
    server.stop().await;
}

#[tokio::test]
async fn invalid_documents_are_rejected_with_every_problem() {
    let server = TestServer::start().await;
    let c = server.client();
    let bad = json!({"location_name": "a", "code_source": {}, "imag": "x", "git": "abc"});
    let data = c.data(ADD_LOCATION, json!({"document": bad})).await;
    assert_eq!(
        data["addOrUpdateLocationFromDocument"],
        json!({"__typename": "InvalidLocationError", "errors": [
            "location 'a': unknown key 'imag' (allowed: location_name, code_source, image, working_directory, executable_path, attribute, container_context, agent_queue, git, pex_metadata, pex_bundle, defs_state_info, build)",
            "location 'a': code_source must set exactly one of package_name, module_name, python_file, autoload_defs_module_name (found none)",
            "location 'a': git must be a mapping, got a string",
        ]})
    );
    let data = c
        .data(ADD_LOCATION, json!({"document": {"image": "x"}}))
        .await;
    assert_eq!(
        data["addOrUpdateLocationFromDocument"]["errors"],
        json!(["location document: missing required key location_name"])
    );
    assert!(
        server
            .server
            .deployments()
            .locations("prod")
            .unwrap()
            .is_empty()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_failing_deploy_locations_changes_nothing() {
    let server = TestServer::start().await;
    let c = server.client();
    c.data(ADD_LOCATION, json!({"document": doc("a", "img/a:1")}))
        .await;
    let before = server
        .server
        .deployments()
        .locations_document("prod")
        .unwrap();
    let history_before = server
        .server
        .deployments()
        .history("prod", "a", HistoryPage::ALL)
        .unwrap();

    // The first entry is valid and would update `a`, the third is invalid.
    let deploy = json!({"locations": [
        doc("a", "img/a:2"),
        doc("new", "img/new:1"),
        {"location_name": "broken", "code_source": {"module_name": "x", "package_name": "y"}},
    ]});
    let data = c.data(DEPLOY_LOCATIONS, json!({"document": deploy})).await;
    assert_eq!(
        data["deployLocations"]["__typename"],
        "InvalidLocationError"
    );
    assert_eq!(
        data["deployLocations"]["errors"],
        json!([
            "location 'broken': code_source must set exactly one of package_name, module_name, python_file, autoload_defs_module_name (found package_name, module_name)"
        ])
    );
    assert_eq!(
        server
            .server
            .deployments()
            .locations_document("prod")
            .unwrap(),
        before
    );
    assert_eq!(
        server
            .server
            .deployments()
            .history("prod", "a", HistoryPage::ALL)
            .unwrap(),
        history_before
    );
    assert!(
        server
            .server
            .deployments()
            .history("prod", "new", HistoryPage::ALL)
            .is_err()
    );

    // Duplicate names are refused as a whole too.
    let dup = json!({"locations": [doc("a", "img/a:3"), doc("a", "img/a:4")]});
    let data = c.data(DEPLOY_LOCATIONS, json!({"document": dup})).await;
    assert_eq!(
        data["deployLocations"]["__typename"],
        "InvalidLocationError"
    );
    assert_eq!(
        server
            .server
            .deployments()
            .locations_document("prod")
            .unwrap(),
        before
    );
    server.stop().await;
}

#[tokio::test]
async fn agents_deployments_and_settings() {
    let server = TestServer::start().await;
    let c = server.client();

    let data = c
        .data(
            "query { agents { status errors { error { message } } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["agents"], json!([{"status": "RUNNING", "errors": []}]));

    let data = c
        .data(
            "query { currentDeployment { agentType deploymentName } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["currentDeployment"],
        json!({"agentType": "HYBRID", "deploymentName": "prod"})
    );

    let set = "mutation($deploymentSettings: DeploymentSettingsInput!) {
        setDeploymentSettings(deploymentSettings: $deploymentSettings) {
            __typename ... on DeploymentSettings { settings } ... on UnauthorizedError { message }
            ... on PythonError { message stack } } }";
    let settings = json!({"run_queue": {"max_concurrent_runs": 5}});
    let data = c
        .data(set, json!({"deploymentSettings": {"settings": settings}}))
        .await;
    assert_eq!(data["setDeploymentSettings"]["settings"], settings);
    let data = c
        .data("query { deploymentSettings { settings } }", json!({}))
        .await;
    assert_eq!(data["deploymentSettings"]["settings"], settings);

    let data = c
        .data("query { organizationSettings { settings } }", json!({}))
        .await;
    assert_eq!(data["organizationSettings"]["settings"], json!({}));
    let set_org = "mutation($s: OrganizationSettingsInput!) {
        setOrganizationSettings(organizationSettings: $s) { __typename ... on OrganizationSettings { settings } } }";
    let data = c
        .data(set_org, json!({"s": {"settings": {"sso": true}}}))
        .await;
    assert_eq!(
        data["setOrganizationSettings"]["settings"],
        json!({"sso": true})
    );

    // Branch deployments: create, update (same name), look up, list, delete.
    let create = "mutation($branchData: CreateOrUpdateBranchDeploymentInput!, $commit: DeploymentCommitInput!,
        $baseDeploymentName: String, $snapshotBaseCondition: SnapshotBaseDeploymentCondition) {
        createOrUpdateBranchDeployment(branchData: $branchData, commit: $commit,
            baseDeploymentName: $baseDeploymentName, snapshotBaseCondition: $snapshotBaseCondition) {
            __typename ... on DagsterCloudDeployment { deploymentId deploymentName }
            ... on PythonError { message } } }";
    let vars = |hash: &str| {
        json!({
            "branchData": {"repoName": "org/repo", "branchName": "feat/x", "branchUrl": null,
                           "pullRequestUrl": "https://pr/1", "pullRequestStatus": "open",
                           "pullRequestNumber": "1"},
            "commit": {"commitHash": hash, "timestamp": 1.5, "commitMessage": "m",
                       "commitUrl": null, "authorName": "A", "authorEmail": null,
                       "authorAvatarUrl": null},
            "baseDeploymentName": "prod",
            "snapshotBaseCondition": "ON_CREATE",
        })
    };
    let org = c.with_deployment(None);
    let first = org.data(create, vars("c1")).await["createOrUpdateBranchDeployment"].clone();
    let second = org.data(create, vars("c2")).await["createOrUpdateBranchDeployment"].clone();
    assert_eq!(first["deploymentName"], "feat-x");
    assert_eq!(first, second);
    let record = server.server.deployments().deployment("feat-x").unwrap();
    let branch = record.branch.unwrap();
    assert_eq!(branch.commit.commit_hash, "c2");
    assert_eq!(branch.pull_request_status.as_deref(), Some("OPEN"));
    assert_eq!(branch.base_deployment_name.as_deref(), Some("prod"));
    assert_eq!(branch.snapshot_base_condition.as_deref(), Some("ON_CREATE"));

    let get = "query($repoName: String!, $branchName: String!) {
        getBranchDeploymentName(repoName: $repoName, branchName: $branchName) }";
    let data = org
        .data(get, json!({"repoName": "org/repo", "branchName": "feat/x"}))
        .await;
    assert_eq!(data["getBranchDeploymentName"], "feat-x");
    let data = org
        .data(get, json!({"repoName": "org/repo", "branchName": "other"}))
        .await;
    assert_eq!(data["getBranchDeploymentName"], Value::Null);

    let data = org
        .data(
            "query { fullDeployments { deploymentName deploymentType } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["fullDeployments"],
        json!([{"deploymentName": "prod", "deploymentType": "PRODUCTION"}])
    );

    // Organisation-level fields work on a deployment's path too.
    let (_, body) = c
        .post(
            "/prod/graphql",
            "query { fullDeployments { deploymentName } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["fullDeployments"],
        json!([{"deploymentName": "prod"}])
    );

    let by_name = "query($deploymentName: String!) { deploymentByName(name: $deploymentName) {
        __typename ... on DagsterCloudDeployment { deploymentName deploymentId deploymentType } } }";
    let data = org.data(by_name, json!({"deploymentName": "feat-x"})).await;
    assert_eq!(data["deploymentByName"]["deploymentType"], "BRANCH");
    let id = data["deploymentByName"]["deploymentId"].clone();
    let delete = "mutation($deploymentId: Int!) { deleteDeployment(deploymentId: $deploymentId) {
        __typename ... on DagsterCloudDeployment { deploymentId } ... on PythonError { message stack } } }";
    let data = org.data(delete, json!({"deploymentId": id})).await;
    assert_eq!(
        data["deleteDeployment"]["__typename"],
        "DagsterCloudDeployment"
    );
    let data = org.data(by_name, json!({"deploymentName": "feat-x"})).await;
    assert_eq!(
        data["deploymentByName"]["__typename"],
        "DeploymentNotFoundError"
    );

    let mark = "mutation($eventType: CliEventType!, $durationSeconds: Float!, $success: Boolean,
        $tags: [String], $message: String) { markCliEvent(eventType: $eventType,
        durationSeconds: $durationSeconds, success: $success, tags: $tags, message: $message) }";
    let data = org
        .data(
            mark,
            json!({"eventType": "DEPLOY", "durationSeconds": 1.0, "success": true,
                           "tags": ["source:cli"], "message": null}),
        )
        .await;
    assert_eq!(data["markCliEvent"], "ok");
    server.stop().await;
}

#[tokio::test]
async fn the_deployment_comes_from_the_path_or_the_header() {
    let server = TestServer::start().await;
    server
        .server
        .deployments()
        .create_deployment("staging")
        .unwrap();
    let c = server.client().with_deployment(Some("staging"));
    c.data(ADD_LOCATION, json!({"document": doc("s", "img/s:1")}))
        .await;
    let path_only = c.with_deployment(None);
    let (status, body) = path_only
        .post(
            "/prod/graphql",
            ADD_LOCATION,
            json!({"document": doc("p", "img/p:1")}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let names = |d: &str| -> Vec<String> {
        server
            .server
            .deployments()
            .locations(d)
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect()
    };
    assert_eq!(names("staging"), ["s"]);
    assert_eq!(names("prod"), ["p"]);

    // Conflicting path and header, and an unknown deployment, are clear errors.
    let (_, body) = c
        .post("/prod/graphql", LOCATIONS_AS_DOCUMENT, json!({}))
        .await;
    assert_eq!(
        body["errors"][0]["message"],
        "the URL names deployment 'prod' but the Dagster-Cloud-Deployment header names \
         'staging'; use one deployment"
    );
    let (_, body) = c
        .with_deployment(Some("nope"))
        .post("/graphql", ADD_LOCATION, json!({"document": doc("x", "i")}))
        .await;
    assert_eq!(
        body["data"]["addOrUpdateLocationFromDocument"],
        json!({"__typename": "PythonError", "stack": [],
               "message": "deployment 'nope' does not exist (existing deployments: prod, staging); create it first or check the deployment name"})
    );
    server.stop().await;
}

#[tokio::test]
async fn malformed_and_oversized_requests() {
    let server = TestServer::start().await;
    let c = server.client();
    let (status, body) = c.post_raw("/graphql", b"{not json".to_vec()).await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("the request body is not a GraphQL request"),
        "{body}"
    );
    let (status, body) = c.post("/graphql", "query { workspace {", json!({})).await;
    assert_eq!(status, 200);
    assert!(body["errors"][0]["message"].is_string(), "{body}");
    let (status, body) = c.post("/graphql", "query { noSuchField }", json!({})).await;
    assert_eq!(status, 200);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("noSuchField"),
        "{body}"
    );
    let huge = json!({"document": doc("big", &"x".repeat(11 * 1024 * 1024))});
    let (status, body) = c.post("/graphql", ADD_LOCATION, huge).await;
    assert_eq!(status, 413);
    assert_eq!(
        body["errors"][0]["message"],
        "the request body is larger than this server's limit of 10485760 bytes"
    );
    assert!(
        server
            .server
            .deployments()
            .locations("prod")
            .unwrap()
            .is_empty()
    );
    server.stop().await;
}
