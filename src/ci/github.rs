//! GitHub Actions: workflow commands (`::add-mask::`, `::error file=..::`), the step's output
//! and job summary files, and the pull request comment that is posted once and then edited.
//!
//! Workflow commands go to stderr: the runner reads commands from both streams, and stdout is
//! kept for results (`--json`).

use std::io::Write as _;
use std::path::Path;

use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::Value;

use super::comment_thread::Thread;

use crate::config::{Diagnostic, Env};

/// True inside a GitHub Actions job.
pub fn active(env: Env) -> bool {
    env("GITHUB_ACTIONS").as_deref() == Some("true")
}

pub use crate::printer::mask;

/// Masks the secrets the tool reads from the environment, before anything can print them.
pub fn mask_env_secrets(env: Env) {
    for var in ["DAGSTER_CLOUD_API_TOKEN", crate::registry::PASSWORD_VAR] {
        if let Some(value) = env(var) {
            mask(env, &value);
        }
    }
}

/// `::error file=..,line=..,col=..,title=..::message` for each config problem, so GitHub marks
/// the line in `dagster_cloud.yaml` (paths relative to the workspace, as annotations need).
pub fn annotations(env: Env, diagnostics: &[Diagnostic]) -> String {
    let workspace = env("GITHUB_WORKSPACE");
    let mut out = String::new();
    for d in diagnostics {
        let file = match &workspace {
            Some(root) => d.file.strip_prefix(root).unwrap_or(&d.file),
            None => d.file.as_path(),
        };
        let title = if d.field.is_empty() {
            "dagster-deploy".to_string()
        } else {
            d.field.clone()
        };
        let message = if d.hint.is_empty() {
            d.message.clone()
        } else {
            format!("{}\nhint: {}", d.message, d.hint)
        };
        out.push_str(&format!(
            "::error file={},line={},col={},title={}::{}\n",
            escape_property(&file.to_string_lossy()),
            d.line,
            d.column,
            escape_property(&title),
            escape_data(&message)
        ));
    }
    out
}

/// Sets step outputs (`$GITHUB_OUTPUT`, heredoc form so any value is safe).
pub fn set_outputs(env: Env, outputs: &[(&str, String)]) -> Result<(), String> {
    let Some(path) = env("GITHUB_OUTPUT").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let mut text = String::new();
    for (name, value) in outputs {
        let delimiter = delimiter_for(value);
        text.push_str(&format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"));
    }
    append(Path::new(&path), &text)
}

/// Appends markdown to the job summary (`$GITHUB_STEP_SUMMARY`).
pub fn append_summary(env: Env, markdown: &str) -> Result<(), String> {
    match env("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        Some(path) => append(Path::new(&path), markdown),
        None => Ok(()),
    }
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A heredoc delimiter that does not occur in the value.
fn delimiter_for(value: &str) -> String {
    let mut delimiter = "DAGSTER_DEPLOY_EOF".to_string();
    while value.contains(&delimiter) {
        delimiter.push('_');
    }
    delimiter
}

/// Workflow command data: `%`, CR and LF are escaped.
use crate::printer::escape_data;

/// Workflow command properties also escape `:` and `,`.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Who posts with the workflow's `GITHUB_TOKEN`: only its comments are edited.
const BOT: &str = "github-actions[bot]";

/// A pull request, addressed through the REST API (`GITHUB_API_URL`).
pub struct PullRequest {
    pub api: String,
    /// `owner/name`.
    pub repo: String,
    pub number: String,
}

impl PullRequest {
    /// Edits our earlier comment (by the bot, containing `marker`) or posts a new one; says
    /// which.
    pub async fn upsert_comment(
        &self,
        token: &str,
        body: &str,
        marker: &str,
    ) -> Result<&'static str, String> {
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "GITHUB_TOKEN is not a valid header value".to_string())?;
        auth.set_sensitive(true);
        headers.insert(AUTHORIZATION, auth);
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        let api = self.api.trim_end_matches('/');
        let edit_url = |id: u64| format!("{api}/repos/{}/issues/comments/{id}", self.repo);
        let is_ours = |c: &Value| {
            c.pointer("/user/login").and_then(Value::as_str) == Some(BOT)
                && c["body"].as_str().is_some_and(|b| b.contains(marker))
        };
        Thread {
            service: "GitHub",
            headers,
            url: format!("{api}/repos/{}/issues/{}/comments", self.repo, self.number),
            edit_url: &edit_url,
            edit_method: Method::PATCH,
            is_ours: &is_ours,
        }
        .upsert(body)
        .await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    fn pr(server: &MockServer) -> PullRequest {
        PullRequest {
            api: server.uri(),
            repo: "acme/mono".into(),
            number: "12".into(),
        }
    }

    #[test]
    fn config_problems_become_annotations_relative_to_the_workspace() {
        let env = |name: &str| match name {
            "GITHUB_WORKSPACE" => Some("/home/runner/work/mono".to_string()),
            _ => None,
        };
        let d = Diagnostic {
            file: "/home/runner/work/mono/dagster_cloud.yaml".into(),
            line: 7,
            column: 5,
            field: "locations[1].code_source".into(),
            message: "100% wrong,\nreally".into(),
            hint: "fix it".into(),
        };
        assert_eq!(
            annotations(&env, &[d]),
            "::error file=dagster_cloud.yaml,line=7,col=5,title=locations[1].code_source::\
             100%25 wrong,%0Areally%0Ahint: fix it\n"
        );
    }

    #[test]
    fn outputs_use_a_delimiter_absent_from_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out");
        let path = file.to_string_lossy().into_owned();
        let env = move |name: &str| (name == "GITHUB_OUTPUT").then(|| path.clone());
        set_outputs(&env, &[("plan", "a\nDAGSTER_DEPLOY_EOF\nb".into())]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "plan<<DAGSTER_DEPLOY_EOF_\na\nDAGSTER_DEPLOY_EOF\nb\nDAGSTER_DEPLOY_EOF_\n"
        );
    }

    #[tokio::test]
    async fn edits_our_earlier_comment() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/repos/acme/mono/issues/12/comments"))
            .and(header("authorization", "Bearer t0k"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([
                {"id": 1, "user": {"login": "someone"}, "body": "Dagster Cloud (`prod`) is nice"},
                {"id": 2, "user": {"login": BOT}, "body": "old: Dagster Cloud (`prod`)."},
            ])))
            .mount(&server)
            .await;
        Mock::given(method("PATCH"))
            .and(path("/repos/acme/mono/issues/comments/2"))
            .and(body_json(json!({"body": "new"})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 2})))
            .expect(1)
            .mount(&server)
            .await;
        let done = pr(&server)
            .upsert_comment("t0k", "new", "Dagster Cloud (`prod`)")
            .await;
        assert_eq!(done, Ok("Updated"));
    }

    #[tokio::test]
    async fn posts_a_new_comment_and_reports_failures_without_the_token() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/repos/acme/mono/issues/12/comments"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 3})))
            .expect(1)
            .mount(&server)
            .await;
        assert_eq!(
            pr(&server)
                .upsert_comment("t0k", "b", "Dagster Cloud")
                .await,
            Ok("Posted")
        );

        let failing = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(403).set_body_string("Resource not accessible"))
            .mount(&failing)
            .await;
        let err = pr(&failing)
            .upsert_comment("s3cret-token", "b", "Dagster Cloud")
            .await
            .unwrap_err();
        assert!(err.contains("403"), "{err}");
        assert!(!err.contains("s3cret-token"));
    }
}
