//! Registry credentials and where they come from, in this order:
//!
//! 1. `DAGSTER_DEPLOY_REGISTRY_USERNAME` + `DAGSTER_DEPLOY_REGISTRY_PASSWORD` (for CI), for
//!    every registry or, when `DAGSTER_DEPLOY_REGISTRY_HOST` is set, for that one only;
//! 2. Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
//!    `credHelpers` for the host, else `credsStore`, through the `docker-credential-*` helpers,
//!    then `auths`.
//!
//! Secrets live in [`Secret`], which never prints its value (not in `Debug` either).

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use super::RegistryError;
use super::docker_config::DockerConfig;
use crate::config::Env;

pub const USERNAME_VAR: &str = "DAGSTER_DEPLOY_REGISTRY_USERNAME";
pub const PASSWORD_VAR: &str = "DAGSTER_DEPLOY_REGISTRY_PASSWORD";
pub const HOST_VAR: &str = "DAGSTER_DEPLOY_REGISTRY_HOST";

/// The user name Docker's helpers report for an identity (OAuth refresh) token.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

/// A secret string: readable only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_string())
    }
}

/// A user name and password (or identity token) for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryCredentials {
    /// `host[:port]` as in image references (`docker.io` for Docker Hub); may also be written
    /// as Docker's config keys are (`https://index.docker.io/v1/`).
    pub registry: String,
    pub username: String,
    pub password: Secret,
}

impl RegistryCredentials {
    /// The password is an identity token (OAuth refresh token), not a password.
    pub fn is_identity_token(&self) -> bool {
        self.username == IDENTITY_TOKEN_USER
    }

    /// As the Docker engine takes them for a pull or push (never put in an image or a
    /// container: only in the Engine API request's auth header).
    pub fn to_docker(&self) -> bollard::auth::DockerCredentials {
        let secret = Some(self.password.expose().to_string());
        let (username, password, identitytoken) = if self.is_identity_token() {
            (None, None, secret)
        } else {
            (Some(self.username.clone()), secret, None)
        };
        bollard::auth::DockerCredentials {
            username,
            password,
            identitytoken,
            serveraddress: Some(self.registry.clone()),
            ..Default::default()
        }
    }

    /// Whether these credentials are for `registry` (Docker Hub's aliases count as one).
    pub fn matches(&self, registry: &str) -> bool {
        normalize_host(&self.registry) == normalize_host(registry)
    }
}

/// `host[:port]` from any way of writing a registry (`https://ghcr.io/`, `index.docker.io`,
/// `https://index.docker.io/v1/`); Docker Hub's names all become `docker.io`.
pub fn normalize_host(registry: &str) -> String {
    let r = registry.trim();
    let r = r
        .strip_prefix("https://")
        .or_else(|| r.strip_prefix("http://"))
        .unwrap_or(r);
    let host = r.split('/').next().unwrap_or(r);
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            super::DOCKER_HUB.to_string()
        }
        other => other.to_ascii_lowercase(),
    }
}

/// Finds credentials for registries, once per registry (helpers are processes).
#[derive(Debug)]
pub struct Keychain {
    explicit: Option<Explicit>,
    config: Option<DockerConfig>,
    cache: Mutex<HashMap<String, Option<RegistryCredentials>>>,
}

#[derive(Debug)]
struct Explicit {
    host: Option<String>,
    username: String,
    password: Secret,
}

impl Keychain {
    /// Reads the environment and Docker's config file (not the helpers: they run on demand).
    pub fn from_env(env: Env) -> Result<Keychain, RegistryError> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let explicit = match (var(USERNAME_VAR), var(PASSWORD_VAR)) {
            (Some(username), Some(password)) => Some(Explicit {
                host: var(HOST_VAR).map(|h| normalize_host(&h)),
                username,
                password: password.into(),
            }),
            (None, None) => None,
            (Some(_), None) => return Err(half_set(USERNAME_VAR, PASSWORD_VAR)),
            (None, Some(_)) => return Err(half_set(PASSWORD_VAR, USERNAME_VAR)),
        };
        Ok(Keychain {
            explicit,
            config: DockerConfig::load(env)?,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// A keychain that knows exactly these credentials (tests, the server's settings).
    pub fn with(credentials: Vec<RegistryCredentials>) -> Keychain {
        let cache = credentials
            .into_iter()
            .map(|c| (normalize_host(&c.registry), Some(c)))
            .collect();
        Keychain {
            explicit: None,
            config: None,
            cache: Mutex::new(cache),
        }
    }

    /// Credentials for `registry`, `None` when nothing is configured for it.
    pub fn get(&self, registry: &str) -> Result<Option<RegistryCredentials>, RegistryError> {
        let host = normalize_host(registry);
        if let Some(found) = self.lock().get(&host) {
            return Ok(found.clone());
        }
        let found = self.lookup(registry, &host)?;
        self.lock().insert(host, found.clone());
        Ok(found)
    }

    /// Credentials for a registry a build pulls from (a `FROM` image): Docker's config, or the
    /// variables only when they name this host. Variables without a host are meant for the
    /// push registry and are never handed to another one (Docker Hub would receive them).
    pub fn for_pull(&self, registry: &str) -> Result<Option<RegistryCredentials>, RegistryError> {
        let host = normalize_host(registry);
        if self
            .explicit
            .as_ref()
            .is_some_and(|e| e.host.as_deref() == Some(host.as_str()))
        {
            return self.get(registry);
        }
        match &self.config {
            Some(config) => config.credentials(registry, &host),
            None => Ok(None),
        }
    }

    fn lookup(
        &self,
        registry: &str,
        host: &str,
    ) -> Result<Option<RegistryCredentials>, RegistryError> {
        if let Some(e) = &self.explicit
            && e.host.as_deref().is_none_or(|h| h == host)
        {
            return Ok(Some(RegistryCredentials {
                registry: registry.to_string(),
                username: e.username.clone(),
                password: e.password.clone(),
            }));
        }
        match &self.config {
            Some(config) => config.credentials(registry, host),
            None => Ok(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<RegistryCredentials>>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn half_set(set: &str, missing: &str) -> RegistryError {
    RegistryError::Environment {
        message: format!("{set} is set but {missing} is not"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let c = RegistryCredentials {
            registry: "r".into(),
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.password.expose(), "hunter2");
    }

    #[test]
    fn hosts_normalise() {
        assert_eq!(normalize_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_host("registry-1.docker.io"), "docker.io");
        assert_eq!(normalize_host("https://GHCR.io/"), "ghcr.io");
        assert_eq!(normalize_host("localhost:5000"), "localhost:5000");
    }

    #[test]
    fn explicit_variables_win_and_may_name_a_host() {
        let env = |name: &str| match name {
            USERNAME_VAR => Some("ci".to_string()),
            PASSWORD_VAR => Some("pw".to_string()),
            HOST_VAR => Some("localhost:5000".to_string()),
            "DOCKER_CONFIG" => Some("/nonexistent/dagster-deploy".to_string()),
            _ => None,
        };
        let keys = Keychain::from_env(&env).unwrap();
        let c = keys.get("localhost:5000").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.expose()), ("ci", "pw"));
        assert_eq!(keys.get("ghcr.io").unwrap(), None);
    }

    #[test]
    fn base_image_registries_get_docker_config_credentials_never_the_push_variables() {
        let dir = tempfile::tempdir().unwrap();
        // "ghcr-user:ghcr-pw"
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths": {"ghcr.io": {"auth": "Z2hjci11c2VyOmdoY3ItcHc="}}}"#,
        )
        .unwrap();
        let config = dir.path().to_string_lossy().into_owned();
        let env = |name: &str| match name {
            USERNAME_VAR => Some("ci".to_string()),
            PASSWORD_VAR => Some("pw".to_string()),
            "DOCKER_CONFIG" => Some(config.clone()),
            _ => None,
        };
        let keys = Keychain::from_env(&env).unwrap();
        // For the push registry the variables hold for every host...
        assert_eq!(keys.get("docker.io").unwrap().unwrap().username, "ci");
        // ...but a base image's registry gets only what Docker's config has for it.
        assert_eq!(keys.for_pull("docker.io").unwrap(), None);
        let ghcr = keys.for_pull("ghcr.io").unwrap().unwrap();
        assert_eq!(
            (ghcr.username.as_str(), ghcr.password.expose()),
            ("ghcr-user", "ghcr-pw")
        );
    }

    #[test]
    fn half_set_variables_are_an_error() {
        let env = |name: &str| (name == USERNAME_VAR).then(|| "ci".to_string());
        let err = Keychain::from_env(&env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "DAGSTER_DEPLOY_REGISTRY_USERNAME is set but DAGSTER_DEPLOY_REGISTRY_PASSWORD is not"
        );
    }
}
