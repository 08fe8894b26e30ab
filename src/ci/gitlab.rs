//! GitLab CI: the merge request note (posted once, then edited) and the dotenv report later
//! jobs read. Collapsible sections are the progress reporter's (`progress.rs`).

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

use super::comment_thread::Thread;

use crate::config::Env;

/// The token that may write merge request notes (a project or personal access token with
/// `api` scope: `CI_JOB_TOKEN` cannot).
pub const TOKEN_VAR: &str = "DAGSTER_DEPLOY_GITLAB_TOKEN";

/// The merge request this pipeline runs for, from GitLab's predefined variables; `None`
/// outside a merge request pipeline.
pub struct MergeRequest {
    /// `CI_API_V4_URL`.
    pub api: String,
    /// `CI_PROJECT_ID` (the target project's).
    pub project: String,
    /// `CI_MERGE_REQUEST_IID`.
    pub iid: String,
}

impl MergeRequest {
    pub fn from_env(env: Env) -> Option<MergeRequest> {
        let var = |name| env(name).filter(|v: &String| !v.trim().is_empty());
        Some(MergeRequest {
            api: var("CI_API_V4_URL")?,
            project: var("CI_MERGE_REQUEST_PROJECT_ID").or_else(|| var("CI_PROJECT_ID"))?,
            iid: var("CI_MERGE_REQUEST_IID")?,
        })
    }

    /// Edits the note containing `marker`, else posts one; says which.
    pub async fn upsert_note(
        &self,
        token: &str,
        body: &str,
        marker: &str,
    ) -> Result<&'static str, String> {
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(token)
            .map_err(|_| format!("{TOKEN_VAR} is not a valid header value"))?;
        auth.set_sensitive(true);
        headers.insert("PRIVATE-TOKEN", auth);
        let url = format!(
            "{}/projects/{}/merge_requests/{}/notes",
            self.api.trim_end_matches('/'),
            self.project,
            self.iid
        );
        let edit_url = |id: u64| format!("{url}/{id}");
        let is_ours = |n: &Value| n["body"].as_str().is_some_and(|b| b.contains(marker));
        Thread {
            service: "GitLab",
            headers,
            url: url.clone(),
            edit_url: &edit_url,
            edit_method: Method::PUT,
            is_ours: &is_ours,
        }
        .upsert(body)
        .await
    }
}

/// `KEY=VALUE` lines for a `reports: dotenv` artifact; values are single-line by construction
/// (newlines would end the entry), so they are replaced by spaces.
pub fn dotenv(vars: &[(&str, String)]) -> String {
    vars.iter()
        .map(|(k, v)| format!("{k}={}\n", v.replace(['\n', '\r'], " ")))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    #[tokio::test]
    async fn edits_the_note_carrying_the_marker() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/projects/7/merge_requests/3/notes"))
            .and(header("private-token", "glpat-x"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([
                {"id": 10, "body": "looks good"},
                {"id": 11, "body": "<!-- dagster-deploy --> old"},
            ])))
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path("/projects/7/merge_requests/3/notes/11"))
            .and(body_json(json!({"body": "new"})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 11})))
            .expect(1)
            .mount(&server)
            .await;
        let mr = MergeRequest {
            api: server.uri(),
            project: "7".into(),
            iid: "3".into(),
        };
        let done = mr
            .upsert_note("glpat-x", "new", "<!-- dagster-deploy -->")
            .await;
        assert_eq!(done, Ok("Updated"));
    }

    #[test]
    fn dotenv_values_stay_on_one_line() {
        assert_eq!(
            dotenv(&[("A", "x\ny".into()), ("B", "z".into())]),
            "A=x y\nB=z\n"
        );
    }

    #[test]
    fn merge_request_from_predefined_variables() {
        let env = |name: &str| match name {
            "CI_API_V4_URL" => Some("https://gitlab.example/api/v4".to_string()),
            "CI_PROJECT_ID" => Some("7".to_string()),
            "CI_MERGE_REQUEST_IID" => Some("3".to_string()),
            _ => None,
        };
        let mr = MergeRequest::from_env(&env).map(|m| (m.project, m.iid));
        assert_eq!(mr, Some(("7".into(), "3".into())));
        assert!(MergeRequest::from_env(&|_: &str| None).is_none());
    }
}
