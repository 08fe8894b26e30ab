//! Where requests go and with which token: flags > environment (`DAGSTER_CLOUD_*`) > the
//! dagster-cloud CLI config file (`$DAGSTER_CLOUD_CLI_CONFIG`, else
//! `~/.dagster_cloud_cli/config`) > defaults, as the reference CLI resolves them.
//!
//! The config file's `url` key is read but not used as an endpoint: the reference CLI never
//! sends deployment requests to it either (for `dg` it is the Dagster+ site, not an
//! organisation), so honouring it would send requests somewhere the reference does not.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::client::{Client, ClientOptions};
use super::error::ApiError;
use super::secret::ApiToken;
use crate::config::Env;

/// The reference CLI's default location load timeout.
pub const DEFAULT_LOCATION_LOAD_TIMEOUT: Duration = Duration::from_secs(3600);
/// `ci deploy`'s heartbeat timeout for hybrid agents (Serverless: 900 s).
pub const DEFAULT_HYBRID_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(120);
pub const DEFAULT_SERVERLESS_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(900);

/// What the command line says; every field is optional.
#[derive(Debug, Clone, Default)]
pub struct SettingsFlags {
    pub url: Option<String>,
    pub organization: Option<String>,
    pub deployment: Option<String>,
    pub api_token: Option<ApiToken>,
    /// Seconds.
    pub location_load_timeout: Option<u64>,
    /// Seconds.
    pub agent_heartbeat_timeout: Option<u64>,
}

/// The dagster-cloud CLI config file. Unknown keys are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CliConfigFile {
    pub url: Option<String>,
    pub organization: Option<String>,
    pub default_deployment: Option<String>,
    pub user_token: Option<String>,
    pub agent_timeout: Option<u64>,
}

/// Resolved settings.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `--url` / `DAGSTER_CLOUD_URL`, without trailing `/`.
    pub url: Option<String>,
    pub organization: Option<String>,
    pub deployment: Option<String>,
    pub token: Option<ApiToken>,
    /// `DAGSTER_CLOUD_ENV` (e.g. `eu`): organisation URLs become `https://{org}.{env}.dagster.cloud`.
    pub region: Option<String>,
    pub location_load_timeout: Duration,
    /// `None`: the command's default.
    pub agent_heartbeat_timeout: Option<Duration>,
}

impl Settings {
    /// Resolves flags, environment and config file (its absence is fine; a broken one is an
    /// error naming it).
    pub fn resolve(flags: &SettingsFlags, env: Env) -> Result<Settings, ApiError> {
        let file = read_config_file(env)?;
        let pick = |flag: &Option<String>, var: &str, from_file: Option<&String>| {
            nonempty(flag.clone())
                .or_else(|| nonempty(env(var)))
                .or_else(|| nonempty(from_file.cloned()))
        };
        let seconds = |flag: Option<u64>, var: &str| -> Result<Option<Duration>, ApiError> {
            if let Some(s) = flag {
                return Ok(Some(Duration::from_secs(s)));
            }
            match nonempty(env(var)) {
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(|s| Some(Duration::from_secs(s)))
                    .map_err(|_| ApiError::InvalidTimeout {
                        name: var.to_string(),
                        value: v,
                    }),
                None => Ok(None),
            }
        };
        let url = nonempty(flags.url.clone())
            .or_else(|| nonempty(env("DAGSTER_CLOUD_URL")))
            .map(|u| normalize_url(&u))
            .transpose()?;
        let token = flags
            .api_token
            .clone()
            .or_else(|| env("DAGSTER_CLOUD_API_TOKEN").and_then(ApiToken::new))
            .or_else(|| file.user_token.clone().and_then(ApiToken::new));
        Ok(Settings {
            url,
            organization: pick(
                &flags.organization,
                "DAGSTER_CLOUD_ORGANIZATION",
                file.organization.as_ref(),
            ),
            deployment: pick(
                &flags.deployment,
                "DAGSTER_CLOUD_DEPLOYMENT",
                file.default_deployment.as_ref(),
            ),
            token,
            region: nonempty(env("DAGSTER_CLOUD_ENV")),
            location_load_timeout: seconds(
                flags.location_load_timeout,
                "DAGSTER_CLOUD_LOCATION_LOAD_TIMEOUT",
            )?
            .or(file.agent_timeout.map(Duration::from_secs))
            .unwrap_or(DEFAULT_LOCATION_LOAD_TIMEOUT),
            // 0 means "not set" for every command (waiting 0 s for a heartbeat would fail
            // at the first poll).
            agent_heartbeat_timeout: seconds(
                flags.agent_heartbeat_timeout,
                "DAGSTER_CLOUD_AGENT_HEARTBEAT_TIMEOUT",
            )?
            .filter(|t| !t.is_zero()),
        })
    }

    /// True when any Dagster+ setting is present: no URL, no organisation and no token means
    /// "no account", and `deploy` then uses the local store.
    pub fn has_remote(&self) -> bool {
        self.url.is_some() || self.organization.is_some() || self.token.is_some()
    }

    pub fn token(&self, what: &str) -> Result<&ApiToken, ApiError> {
        self.token.as_ref().ok_or_else(|| ApiError::MissingToken {
            what: what.to_string(),
        })
    }

    pub fn deployment(&self, what: &str) -> Result<&str, ApiError> {
        self.deployment
            .as_deref()
            .ok_or_else(|| ApiError::MissingDeployment {
                what: what.to_string(),
            })
    }

    /// The organisation's URL: `--url`/`DAGSTER_CLOUD_URL` as given (for `ci`-style and
    /// organisation-scoped calls it *is* the organisation URL), else
    /// `https://{org}.dagster.cloud` (`https://{org}.{env}.dagster.cloud` with
    /// `DAGSTER_CLOUD_ENV`).
    pub fn organization_url(&self, what: &str) -> Result<String, ApiError> {
        if let Some(url) = &self.url {
            return Ok(url.clone());
        }
        let org = self
            .organization
            .as_deref()
            .ok_or_else(|| ApiError::MissingOrganization {
                what: what.to_string(),
            })?;
        Ok(match &self.region {
            Some(env) => format!("https://{org}.{env}.dagster.cloud"),
            None => format!("https://{org}.dagster.cloud"),
        })
    }

    /// The deployment URL of `deployment *` commands: `--url`/`DAGSTER_CLOUD_URL` as given
    /// (there it is the deployment's URL), else the organisation URL + `/{deployment}`.
    pub fn deployment_url(&self, what: &str) -> Result<String, ApiError> {
        if let Some(url) = &self.url {
            return Ok(url.clone());
        }
        let base = self.organization_url(what)?;
        Ok(format!("{base}/{}", self.deployment(what)?))
    }

    /// The URL `deploy` and `ci`-style commands use: the organisation URL + `/{deployment}`.
    pub fn ci_deployment_url(&self, what: &str) -> Result<String, ApiError> {
        Ok(format!(
            "{}/{}",
            self.organization_url(what)?,
            self.deployment(what)?
        ))
    }

    /// The client of `deployment *` commands: the deployment URL, with the deployment header.
    pub fn deployment_client(&self, what: &str) -> Result<Client, ApiError> {
        Client::new(
            &self.deployment_url(what)?,
            self.token(what)?.clone(),
            self.deployment.as_deref(),
            ClientOptions::default(),
        )
    }

    /// The client of `branch-deployment delete`, as the reference builds it: the deployment
    /// URL, but no deployment header.
    pub fn branch_deletion_client(&self, what: &str) -> Result<Client, ApiError> {
        Client::new(
            &self.deployment_url(what)?,
            self.token(what)?.clone(),
            None,
            ClientOptions::default(),
        )
    }

    /// The client of organisation-scoped calls (branch deployments, organisation settings):
    /// the organisation URL, no deployment header.
    pub fn organization_client(&self, what: &str) -> Result<Client, ApiError> {
        Client::new(
            &self.organization_url(what)?,
            self.token(what)?.clone(),
            None,
            ClientOptions::default(),
        )
    }

    /// The client `deploy` and `ci`-style commands use for `deployment`: `org_url` (a build
    /// session's recorded URL; else the settings' organisation URL) + `/{deployment}`.
    pub fn client_for(
        &self,
        org_url: Option<&str>,
        deployment: &str,
        what: &str,
    ) -> Result<Client, ApiError> {
        let org_url = match org_url.filter(|u| !u.is_empty()) {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => self.organization_url(what)?,
        };
        Client::new(
            &format!("{org_url}/{deployment}"),
            self.token(what)?.clone(),
            Some(deployment),
            ClientOptions::default(),
        )
    }
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// Checks the scheme and strips trailing `/` (the reference strips them too).
pub fn normalize_url(url: &str) -> Result<String, ApiError> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed).map_err(|e| ApiError::InvalidUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ApiError::InvalidUrl {
            url: url.to_string(),
            reason: "it must start with http:// or https:// and name a host".into(),
        });
    }
    Ok(trimmed.to_string())
}

/// `$DAGSTER_CLOUD_CLI_CONFIG`, else `$HOME/.dagster_cloud_cli/config`.
pub fn config_file_path(env: Env) -> Option<PathBuf> {
    nonempty(env("DAGSTER_CLOUD_CLI_CONFIG"))
        .map(PathBuf::from)
        .or_else(|| nonempty(env("HOME")).map(|h| Path::new(&h).join(".dagster_cloud_cli/config")))
}

/// The config file, or defaults when there is none.
pub fn read_config_file(env: Env) -> Result<CliConfigFile, ApiError> {
    let Some(path) = config_file_path(env) else {
        return Ok(CliConfigFile::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CliConfigFile::default()),
        Err(e) => {
            return Err(ApiError::ConfigFile {
                path,
                message: e.to_string(),
            });
        }
    };
    if text.trim().is_empty() {
        return Ok(CliConfigFile::default());
    }
    serde_yaml_ng::from_str(&text).map_err(|e| ApiError::ConfigFile {
        path,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve(flags: &SettingsFlags, vars: &[(&str, &str)]) -> Result<Settings, ApiError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::resolve(flags, &|k| vars.get(k).cloned())
    }

    #[test]
    fn a_zero_heartbeat_timeout_means_the_commands_default() {
        let none = [("HOME", "/nonexistent")];
        let zero = [
            ("HOME", "/nonexistent"),
            ("DAGSTER_CLOUD_AGENT_HEARTBEAT_TIMEOUT", "0"),
        ];
        assert_eq!(
            resolve(&SettingsFlags::default(), &zero)
                .unwrap()
                .agent_heartbeat_timeout,
            None
        );
        let flag = SettingsFlags {
            agent_heartbeat_timeout: Some(30),
            ..Default::default()
        };
        assert_eq!(
            resolve(&flag, &none).unwrap().agent_heartbeat_timeout,
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn flags_beat_environment_beats_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config");
        std::fs::write(
            &file,
            "organization: from-file\ndefault_deployment: staging\nuser_token: file-token\nagent_timeout: 77\nother: ignored\n",
        )
        .unwrap();
        let cfg = file.to_str().unwrap();
        let s = resolve(
            &SettingsFlags::default(),
            &[("DAGSTER_CLOUD_CLI_CONFIG", cfg)],
        )
        .unwrap();
        assert_eq!(s.organization.as_deref(), Some("from-file"));
        assert_eq!(s.deployment.as_deref(), Some("staging"));
        assert_eq!(s.token.as_ref().unwrap().expose(), "file-token");
        assert_eq!(s.location_load_timeout, Duration::from_secs(77));
        assert_eq!(
            s.deployment_url("x").unwrap(),
            "https://from-file.dagster.cloud/staging"
        );

        let env = [
            ("DAGSTER_CLOUD_CLI_CONFIG", cfg),
            ("DAGSTER_CLOUD_ORGANIZATION", "from-env"),
            ("DAGSTER_CLOUD_DEPLOYMENT", "prod"),
            ("DAGSTER_CLOUD_API_TOKEN", "env-token"),
            ("DAGSTER_CLOUD_LOCATION_LOAD_TIMEOUT", "5"),
            ("DAGSTER_CLOUD_ENV", "eu"),
        ];
        let s = resolve(&SettingsFlags::default(), &env).unwrap();
        assert_eq!(s.token.as_ref().unwrap().expose(), "env-token");
        assert_eq!(s.location_load_timeout, Duration::from_secs(5));
        assert_eq!(
            s.deployment_url("x").unwrap(),
            "https://from-env.eu.dagster.cloud/prod"
        );

        let flags = SettingsFlags {
            organization: Some("flag-org".into()),
            deployment: Some("dev".into()),
            api_token: ApiToken::new("flag-token"),
            location_load_timeout: Some(9),
            ..Default::default()
        };
        let s = resolve(&flags, &env).unwrap();
        assert_eq!(s.token.as_ref().unwrap().expose(), "flag-token");
        assert_eq!(s.location_load_timeout, Duration::from_secs(9));
        assert_eq!(
            s.ci_deployment_url("x").unwrap(),
            "https://flag-org.eu.dagster.cloud/dev"
        );
    }

    #[test]
    fn urls_are_used_as_given_without_trailing_slash() {
        let s = resolve(
            &SettingsFlags::default(),
            &[
                ("DAGSTER_CLOUD_URL", "http://127.0.0.1:3000/prod//"),
                ("DAGSTER_CLOUD_DEPLOYMENT", "prod"),
                ("HOME", "/nonexistent"),
            ],
        )
        .unwrap();
        assert_eq!(s.deployment_url("x").unwrap(), "http://127.0.0.1:3000/prod");
        assert!(s.has_remote());
        let err = resolve(
            &SettingsFlags {
                url: Some("ftp://x".into()),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err();
        assert_eq!(err.code(), "api-invalid-url");
    }

    #[test]
    fn nothing_set_means_local() {
        let s = resolve(&SettingsFlags::default(), &[("HOME", "/nonexistent")]).unwrap();
        assert!(!s.has_remote());
        assert_eq!(s.location_load_timeout, DEFAULT_LOCATION_LOAD_TIMEOUT);
        assert_eq!(s.token("deploy").unwrap_err().code(), "api-token-missing");
        assert_eq!(
            s.deployment_url("list").unwrap_err().code(),
            "api-organization-missing"
        );
    }

    #[test]
    fn bad_timeouts_and_config_files_are_named() {
        let err = resolve(
            &SettingsFlags::default(),
            &[("DAGSTER_CLOUD_AGENT_HEARTBEAT_TIMEOUT", "soon")],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("DAGSTER_CLOUD_AGENT_HEARTBEAT_TIMEOUT")
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config");
        std::fs::write(&file, "organization: [unclosed\n").unwrap();
        let err = resolve(
            &SettingsFlags::default(),
            &[("DAGSTER_CLOUD_CLI_CONFIG", file.to_str().unwrap())],
        )
        .unwrap_err();
        assert_eq!(err.code(), "api-config-file");
        assert!(err.to_string().contains(file.to_str().unwrap()));
    }
}
