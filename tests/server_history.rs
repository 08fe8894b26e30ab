//! Every revision of every location document is kept: history and rollback, through the
//! Rust API (the local store, no server) and through GraphQL.

mod support;

use support::server as common;

use common::*;
use dagster_deploy::server::{
    Actor, DeployError, Deployments, HistoryPage, RevisionAction, TokenScope,
};
use serde_json::json;

#[test]
fn history_records_who_when_and_which_commit() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployments::open(dir.path()).unwrap();
    let alice = Actor::local("alice");
    let (ci_token, _) = d
        .create_token(TokenScope::Organization, Some("ci"))
        .unwrap();
    let ci = Actor::from_token(&ci_token);

    let mut v1 = doc("a", "img/a:1");
    v1["git"]["commit_hash"] = json!("c1");
    let mut v2 = doc("a", "img/a:2");
    v2["git"]["commit_hash"] = json!("c2");
    d.add_or_update_location("prod", v1.clone(), &alice)
        .unwrap();
    d.deploy_locations("prod", &json!({"locations": [v2.clone()]}), &ci)
        .unwrap();
    d.delete_location("prod", "a", &alice).unwrap();

    let h = d.history("prod", "a", HistoryPage::ALL).unwrap();
    let summary: Vec<_> = h
        .iter()
        .map(|r| {
            (
                r.action,
                r.actor.as_str(),
                r.token_id,
                r.commit_hash.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (RevisionAction::Registered, "alice", None, Some("c1")),
            (
                RevisionAction::Registered,
                "ci",
                Some(ci_token.id),
                Some("c2")
            ),
            (RevisionAction::Deleted, "alice", None, None),
        ]
    );
    assert_eq!(h[0].document.as_ref(), Some(&v1));
    assert_eq!(h[2].document, None);
    assert!(h[0].created_at_ms <= h[2].created_at_ms);
    assert!(h.windows(2).all(|w| w[0].id < w[1].id));
}

#[test]
fn rollback_registers_an_earlier_document_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployments::open(dir.path()).unwrap();
    let me = Actor::local("me");
    let v1 = doc("a", "img/a:1");
    let v2 = doc("a", "img/a:2");
    let first = d.add_or_update_location("prod", v1.clone(), &me).unwrap();
    d.add_or_update_location("prod", v2.clone(), &me).unwrap();
    // Registering the same document again is a revision too, but not a rollback target.
    d.add_or_update_location("prod", v2.clone(), &me).unwrap();

    let back = d.rollback("prod", "a", None, &me).unwrap();
    assert_eq!(
        back.action,
        RevisionAction::RolledBack {
            from_revision: first.id
        }
    );
    assert_eq!(d.locations("prod").unwrap()[0].document, v1);

    // Explicit target; then after a deletion, rollback restores the last document.
    let to_v2 = d.history("prod", "a", HistoryPage::ALL).unwrap()[1].id;
    d.rollback("prod", "a", Some(to_v2), &me).unwrap();
    assert_eq!(d.locations("prod").unwrap()[0].document, v2);
    d.delete_location("prod", "a", &me).unwrap();
    assert!(d.locations("prod").unwrap().is_empty());
    d.rollback("prod", "a", None, &me).unwrap();
    assert_eq!(d.locations("prod").unwrap()[0].document, v2);
    assert_eq!(d.history("prod", "a", HistoryPage::ALL).unwrap().len(), 7);

    let deletion = d.history("prod", "a", HistoryPage::ALL).unwrap()[5].id;
    assert!(matches!(
        d.rollback("prod", "a", Some(deletion), &me),
        Err(DeployError::UnknownRevision { .. })
    ));
    assert!(matches!(
        d.rollback("prod", "missing", None, &me),
        Err(DeployError::UnknownLocation { .. })
    ));
}

#[test]
fn nothing_to_roll_back_to() {
    let dir = tempfile::tempdir().unwrap();
    let d = Deployments::open(dir.path()).unwrap();
    let me = Actor::local("me");
    d.add_or_update_location("prod", doc("a", "i:1"), &me)
        .unwrap();
    let err = d.rollback("prod", "a", None, &me).unwrap_err();
    assert_eq!(
        err.to_string(),
        "location 'a' in deployment 'prod' has no earlier document to roll back to"
    );
}

#[test]
fn the_local_store_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = Deployments::open(dir.path()).unwrap();
        d.add_or_update_location("prod", doc("a", "i:1"), &Actor::local("me"))
            .unwrap();
    }
    let d = Deployments::open(dir.path()).unwrap();
    assert_eq!(d.locations("prod").unwrap()[0].document, doc("a", "i:1"));
    assert_eq!(d.deployments().unwrap().len(), 1);
}

#[tokio::test]
async fn history_and_rollback_over_graphql() {
    let server = TestServer::start().await;
    let c = server.client();
    c.data(ADD_LOCATION, json!({"document": doc("a", "img/a:1")}))
        .await;
    c.data(ADD_LOCATION, json!({"document": doc("a", "img/a:2")}))
        .await;
    let rollback = "mutation($name: String!) { rollbackLocation(locationName: $name) {
        __typename ... on WorkspaceEntry { locationName document } ... on PythonError { message } } }";
    let data = c.data(rollback, json!({"name": "a"})).await;
    assert_eq!(data["rollbackLocation"]["document"], doc("a", "img/a:1"));

    let history = "query($name: String!) { locationHistory(locationName: $name) {
        __typename ... on LocationHistory { revisions { id kind rolledBackFrom actor commitHash document } } } }";
    let data = c.data(history, json!({"name": "a"})).await;
    let revs = data["locationHistory"]["revisions"].as_array().unwrap();
    let kinds: Vec<_> = revs.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["REGISTERED", "REGISTERED", "ROLLED_BACK"]);
    assert_eq!(revs[2]["rolledBackFrom"], revs[0]["id"]);
    assert_eq!(revs[2]["actor"], "token-1");
    assert_eq!(revs[2]["commitHash"], "abc");

    // Pages: the newest `limit` revisions, then older ones with `before`.
    let paged = "query($name: String!, $limit: Int!, $before: Int) {
        locationHistory(locationName: $name, limit: $limit, before: $before) {
        __typename ... on LocationHistory { revisions { id } } ... on PythonError { message } } }";
    let ids = |data: &serde_json::Value| -> Vec<serde_json::Value> {
        data["locationHistory"]["revisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].clone())
            .collect()
    };
    let newest = c
        .data(paged, json!({"name": "a", "limit": 2, "before": null}))
        .await;
    assert_eq!(ids(&newest), [revs[1]["id"].clone(), revs[2]["id"].clone()]);
    let older = c
        .data(
            paged,
            json!({"name": "a", "limit": 2, "before": revs[1]["id"]}),
        )
        .await;
    assert_eq!(ids(&older), [revs[0]["id"].clone()]);
    let refused = c
        .data(paged, json!({"name": "a", "limit": 0, "before": null}))
        .await;
    assert_eq!(refused["locationHistory"]["__typename"], "PythonError");
    assert!(
        refused["locationHistory"]["message"]
            .as_str()
            .unwrap()
            .contains("limit must be between 1 and 1000")
    );
    server.stop().await;
}
