//! How long to wait for registered locations to load: named policies, as the reference
//! client's commands wait (docs/protocol.md, "Waiting for locations to load").

use std::time::Duration;

use serde_json::Value;

use crate::api::settings::{
    DEFAULT_HYBRID_HEARTBEAT_TIMEOUT, DEFAULT_LOCATION_LOAD_TIMEOUT,
    DEFAULT_SERVERLESS_HEARTBEAT_TIMEOUT,
};
use crate::api::wait::{LoadResult, WaitOptions, wait_for_load};
use crate::api::{ApiError, Client, Settings, ops};

/// How long an agent may take to heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The reference's `ci deploy` rule: 900 s for a Serverless deployment (unless a location
    /// names an agent queue: Serverless agents only serve the default one), else 120 s.
    ByAgentType,
    /// Exactly this long.
    Fixed(Duration),
    /// Only the load timeout applies.
    Unlimited,
}

/// A named waiting rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitPolicy {
    /// Overall limit (`--location-load-timeout`); `None`: do not wait.
    pub load_timeout: Option<Duration>,
    pub heartbeat: Heartbeat,
}

impl Default for WaitPolicy {
    /// `ci deploy`'s rule with the default load timeout.
    fn default() -> Self {
        WaitPolicy {
            load_timeout: Some(DEFAULT_LOCATION_LOAD_TIMEOUT),
            heartbeat: Heartbeat::ByAgentType,
        }
    }
}

impl WaitPolicy {
    /// `ci deploy` (and `deploy`, which does what `ci init/build/deploy` do): the load
    /// timeout, and the heartbeat timeout when set, else [`Heartbeat::ByAgentType`].
    pub fn ci_deploy(settings: &Settings) -> WaitPolicy {
        WaitPolicy {
            load_timeout: Some(settings.location_load_timeout),
            heartbeat: settings
                .agent_heartbeat_timeout
                .map_or(Heartbeat::ByAgentType, Heartbeat::Fixed),
        }
    }

    /// `deployment add-location`, `sync-locations` and `serverless deploy-python-executable`:
    /// a heartbeat limit only when one is set; with a zero load timeout and no heartbeat
    /// limit they do not wait at all.
    pub fn deployment_command(settings: &Settings) -> WaitPolicy {
        let heartbeat = settings
            .agent_heartbeat_timeout
            .map_or(Heartbeat::Unlimited, Heartbeat::Fixed);
        let load_timeout = match (settings.location_load_timeout, heartbeat) {
            (t, Heartbeat::Unlimited) if t.is_zero() => None,
            // A heartbeat limit alone still waits (the reference polls until it passes).
            (t, _) => Some(t.max(Duration::from_millis(1))),
        };
        WaitPolicy {
            load_timeout,
            heartbeat,
        }
    }

    /// Whether this policy waits at all.
    pub fn waits(&self) -> bool {
        self.load_timeout.is_some()
    }

    /// Polls the API until every `sent` location is loaded (or failed to).
    pub async fn wait(
        &self,
        client: &Client,
        sent: &[(String, Value)],
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Vec<(String, LoadResult)>, ApiError> {
        let names: Vec<String> = sent.iter().map(|(n, _)| n.clone()).collect();
        let Some(load_timeout) = self.load_timeout.filter(|_| !names.is_empty()) else {
            return Ok(names.into_iter().map(|n| (n, LoadResult::Loaded)).collect());
        };
        let heartbeat = self.heartbeat_limit(client, sent).await?;
        let opts = WaitOptions::new(load_timeout, heartbeat);
        wait_for_load(client, &names, &opts, progress).await
    }

    /// How long an agent may take to heartbeat for `sent` (`None`: no limit).
    pub async fn heartbeat_limit(
        &self,
        client: &Client,
        sent: &[(String, Value)],
    ) -> Result<Option<Duration>, ApiError> {
        Ok(match self.heartbeat {
            Heartbeat::Fixed(t) => Some(t),
            Heartbeat::Unlimited => None,
            Heartbeat::ByAgentType => {
                let queued = sent.iter().any(|(_, d)| d.get("agent_queue").is_some());
                if !queued && ops::agent_type(client).await? == "SERVERLESS" {
                    Some(DEFAULT_SERVERLESS_HEARTBEAT_TIMEOUT)
                } else {
                    Some(DEFAULT_HYBRID_HEARTBEAT_TIMEOUT)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wiremock::matchers::{body_string_contains, method};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::api::{ApiToken, ClientOptions};

    /// A deployment API whose deployment has agents of `agent_type`.
    async fn api(agent_type: &str) -> (MockServer, Client) {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(body_string_contains("currentDeployment"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {
                "currentDeployment": {"agentType": agent_type, "deploymentName": "prod"}}})))
            .mount(&server)
            .await;
        let token = ApiToken::new("t".to_string()).expect("token");
        let client = Client::new(&server.uri(), token, Some("prod"), ClientOptions::default())
            .expect("client");
        (server, client)
    }

    fn sent(queue: Option<&str>) -> Vec<(String, Value)> {
        let mut doc = json!({"location_name": "a"});
        if let Some(q) = queue {
            doc["agent_queue"] = json!(q);
        }
        vec![("a".into(), doc)]
    }

    /// The reference's `ci deploy` rule, which every registering command except the
    /// `deployment` ones follows (the Python-executable deploys included).
    #[tokio::test]
    async fn the_ci_deploy_heartbeat_follows_the_agent_type() {
        let policy = WaitPolicy::default();
        let (_s, serverless) = api("SERVERLESS").await;
        let limit = policy.heartbeat_limit(&serverless, &sent(None)).await;
        assert_eq!(limit.expect("limit"), Some(Duration::from_secs(900)));
        // Serverless agents serve only the default queue.
        let limit = policy
            .heartbeat_limit(&serverless, &sent(Some("gpu")))
            .await;
        assert_eq!(limit.expect("limit"), Some(Duration::from_secs(120)));
        let (_h, hybrid) = api("HYBRID").await;
        let limit = policy.heartbeat_limit(&hybrid, &sent(None)).await;
        assert_eq!(limit.expect("limit"), Some(Duration::from_secs(120)));
        // Set explicitly, it is used as it is; the deployment commands set no limit.
        let fixed = WaitPolicy {
            heartbeat: Heartbeat::Fixed(Duration::from_secs(7)),
            ..policy
        };
        let limit = fixed.heartbeat_limit(&serverless, &sent(None)).await;
        assert_eq!(limit.expect("limit"), Some(Duration::from_secs(7)));
        let unlimited = WaitPolicy {
            heartbeat: Heartbeat::Unlimited,
            ..policy
        };
        let limit = unlimited.heartbeat_limit(&serverless, &sent(None)).await;
        assert_eq!(limit.expect("limit"), None);
    }

    fn settings(load: u64, heartbeat: Option<u64>) -> Settings {
        let env = |_: &str| None;
        let mut s = Settings::resolve(&Default::default(), &env).expect("settings");
        s.location_load_timeout = Duration::from_secs(load);
        s.agent_heartbeat_timeout = heartbeat.map(Duration::from_secs);
        s
    }

    #[test]
    fn ci_deploy_leaves_the_heartbeat_to_the_agent_type_unless_set() {
        let p = WaitPolicy::ci_deploy(&settings(3600, None));
        assert_eq!(p.heartbeat, Heartbeat::ByAgentType);
        assert_eq!(p.load_timeout, Some(Duration::from_secs(3600)));
        let p = WaitPolicy::ci_deploy(&settings(600, Some(30)));
        assert_eq!(p.heartbeat, Heartbeat::Fixed(Duration::from_secs(30)));
    }

    #[test]
    fn deployment_commands_wait_without_a_heartbeat_limit_unless_set() {
        let p = WaitPolicy::deployment_command(&settings(3600, None));
        assert_eq!(p.heartbeat, Heartbeat::Unlimited);
        assert!(p.waits());
        // Both zero or unset: no wait (as the reference).
        assert!(!WaitPolicy::deployment_command(&settings(0, None)).waits());
        // A heartbeat limit alone still waits.
        let p = WaitPolicy::deployment_command(&settings(0, Some(5)));
        assert!(p.waits());
        assert_eq!(p.heartbeat, Heartbeat::Fixed(Duration::from_secs(5)));
    }
}
