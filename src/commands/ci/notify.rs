//! `ci notify`: on GitHub Actions, the pull request comment showing the session's status —
//! the comment an earlier run posted is edited, else a new one is posted, as the reference
//! does. Like the reference, a comment that cannot be written is a warning, not a failure:
//! it must not fail a deploy. Outside a pull request, or without `GITHUB_TOKEN`, nothing is
//! posted.

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, USER_AGENT};
use serde_json::{Value, json};

use crate::ci::context::{CiContext, CiProvider};
use crate::ci::pull_request::{self, Source};
use crate::ci::report;
use crate::cli::ci::NotifyArgs;
use crate::error::Error;

/// Who posts with the workflow's `GITHUB_TOKEN`: only its comments are edited.
const BOT: &str = "github-actions[bot]";
const PAGES: usize = 20;

pub fn run(args: &NotifyArgs) -> Result<u8, Error> {
    let env = &super::super::process_env;
    let dir = super::statedir(&args.statedir)?;
    let states = dir.list()?;
    if CiContext::detect(env).provider != Some(CiProvider::Github) {
        return Err(Error::Usage {
            message: "'ci notify' is only available within GitHub Actions".into(),
            hint: "on other CIs, post `ci status --output-format markdown` yourself".into(),
        });
    }
    let Some(facts) = pull_request::branch_facts(Source::Github, env, &args.project_dir, false)?
    else {
        eprintln!("Not within a pull request: no comment posted.");
        return Ok(0);
    };
    let (Some(number), Some(token)) = (
        facts.branch.pull_request_number.clone(),
        env("GITHUB_TOKEN").filter(|t| !t.is_empty()),
    ) else {
        eprintln!("GITHUB_TOKEN is not set: no comment posted.");
        return Ok(0);
    };
    let label = states
        .first()
        .map(|s| format!(" (`{}`)", s.deployment_name))
        .unwrap_or_default();
    let body = format!(
        "Your pull request at commit `{}` is automatically being deployed to Dagster Cloud{label}.\n\n{}",
        facts.commit.commit_hash,
        report::markdown(&states)
    );
    let pr = PullRequest {
        api: env("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into()),
        repo: facts.branch.repo_name.clone(),
        number,
    };
    let marker = format!("Dagster Cloud{label}");
    match super::super::runtime()?.block_on(pr.upsert_comment(&token, &body, &marker)) {
        Ok(action) => eprintln!(
            "{action} the status comment on pull request #{}.",
            pr.number
        ),
        Err(why) => eprintln!("warning: could not update the pull request comment: {why}"),
    }
    Ok(0)
}

struct PullRequest {
    api: String,
    /// `owner/name`.
    repo: String,
    number: String,
}

impl PullRequest {
    /// Edits our earlier comment (by the bot, containing `marker`) or posts a new one; says
    /// which. The token only travels in a header and never appears in messages.
    async fn upsert_comment(
        &self,
        token: &str,
        body: &str,
        marker: &str,
    ) -> Result<&'static str, String> {
        let mut headers = HeaderMap::new();
        let auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "GITHUB_TOKEN is not a valid header value".to_string())?;
        headers.insert(AUTHORIZATION, auth);
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(USER_AGENT, HeaderValue::from_static("dagster-deploy"));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let api = self.api.trim_end_matches('/');
        let comments_url = format!("{api}/repos/{}/issues/{}/comments", self.repo, self.number);
        for page in 1..=PAGES {
            let list: Vec<Value> = send(
                http.get(&comments_url)
                    .query(&[("per_page", "100".to_string()), ("page", page.to_string())]),
            )
            .await?
            .as_array()
            .cloned()
            .unwrap_or_default();
            let ours = list.iter().find(|c| {
                c.pointer("/user/login").and_then(Value::as_str) == Some(BOT)
                    && c["body"].as_str().is_some_and(|b| b.contains(marker))
            });
            if let Some(id) = ours.and_then(|c| c["id"].as_u64()) {
                let url = format!("{api}/repos/{}/issues/comments/{id}", self.repo);
                send(http.patch(&url).json(&json!({ "body": body }))).await?;
                return Ok("Updated");
            }
            if list.len() < 100 {
                break;
            }
        }
        send(http.post(&comments_url).json(&json!({ "body": body }))).await?;
        Ok("Posted")
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<Value, String> {
    let response = request
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        let excerpt: String = text.chars().take(200).collect();
        return Err(format!("GitHub answered {status}: {excerpt}"));
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
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
