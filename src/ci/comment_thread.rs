//! One comment in a pull (merge) request thread, posted once and edited on later runs: list the
//! thread page by page, edit the comment that is ours, else post a new one. GitHub's issue
//! comments and GitLab's merge request notes differ only in URLs, headers and the edit method.

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// Pages of 100 read at most while looking for our comment.
const PAGES: usize = 20;

pub struct Thread<'a> {
    /// `GitHub` or `GitLab`, for messages.
    pub service: &'static str,
    /// The credentials header and the service's media type.
    pub headers: HeaderMap,
    /// Lists the thread (GET) and posts to it (POST).
    pub url: String,
    /// The URL that edits the comment with this id.
    pub edit_url: &'a dyn Fn(u64) -> String,
    pub edit_method: Method,
    /// Whether a listed comment is the one to edit.
    pub is_ours: &'a dyn Fn(&Value) -> bool,
}

impl Thread<'_> {
    /// Edits our comment or posts a new one; says which (`Updated` / `Posted`). Credentials only
    /// travel in headers and never appear in messages.
    pub async fn upsert(&self, body: &str) -> Result<&'static str, String> {
        let http = reqwest::Client::builder()
            .default_headers(self.headers.clone())
            .user_agent("dagster-deploy")
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        for page in 1..=PAGES {
            let list = self
                .send(
                    http.get(&self.url)
                        .query(&[("per_page", "100".to_string()), ("page", page.to_string())]),
                )
                .await?;
            let list = list.as_array().cloned().unwrap_or_default();
            let ours = list.iter().find(|c| (self.is_ours)(c));
            if let Some(id) = ours.and_then(|c| c["id"].as_u64()) {
                let edit = http.request(self.edit_method.clone(), (self.edit_url)(id));
                self.send(edit.json(&json!({ "body": body }))).await?;
                return Ok("Updated");
            }
            if list.len() < 100 {
                break;
            }
        }
        self.send(http.post(&self.url).json(&json!({ "body": body })))
            .await?;
        Ok("Posted")
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, String> {
        let response = request
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            let excerpt: String = text.chars().take(200).collect();
            return Err(format!("{} answered {status}: {excerpt}", self.service));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}
