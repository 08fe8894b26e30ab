//! Docker's client configuration (`config.json`): `auths`, `credsStore`, `credHelpers`, and the
//! `docker-credential-<name>` helper protocol (`get`: server URL on stdin, JSON on stdout).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

use super::RegistryError;
use super::credentials::{IDENTITY_TOKEN_USER, RegistryCredentials, Secret, normalize_host};
use crate::config::Env;

/// The key Docker uses for Docker Hub in `auths` and when asking helpers.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
}

#[derive(Default, Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

impl std::fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthEntry(<redacted>)")
    }
}

/// A loaded `config.json`.
#[derive(Debug)]
pub struct DockerConfig {
    path: PathBuf,
    file: ConfigFile,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`; `None` when absent.
    pub fn load(env: Env) -> Result<Option<DockerConfig>, RegistryError> {
        let dir = match (env("DOCKER_CONFIG"), env("HOME")) {
            (Some(dir), _) if !dir.is_empty() => PathBuf::from(dir),
            (_, Some(home)) if !home.is_empty() => Path::new(&home).join(".docker"),
            _ => return Ok(None),
        };
        let path = dir.join("config.json");
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(config_error(&path, format!("cannot read it: {e}"))),
        };
        let file = serde_json::from_slice(&text)
            .map_err(|e| config_error(&path, format!("not a valid Docker config: {e}")))?;
        Ok(Some(DockerConfig { path, file }))
    }

    /// Credentials for `host` (normalised), as the Docker CLI would find them.
    pub fn credentials(
        &self,
        registry: &str,
        host: &str,
    ) -> Result<Option<RegistryCredentials>, RegistryError> {
        let server = if host == super::DOCKER_HUB {
            DOCKER_HUB_KEY.to_string()
        } else {
            host.to_string()
        };
        let helper = self
            .file
            .cred_helpers
            .iter()
            .find(|(key, _)| normalize_host(key) == host)
            .map(|(_, helper)| helper)
            .or(self.file.creds_store.as_ref())
            .filter(|h| !h.is_empty());
        if let Some(helper) = helper
            && let Some(found) = run_helper(helper, &server, registry)?
        {
            return Ok(Some(found));
        }
        let Some(entry) = self
            .file
            .auths
            .iter()
            .find(|(key, _)| normalize_host(key) == host)
            .map(|(_, entry)| entry)
        else {
            return Ok(None);
        };
        self.entry_credentials(entry, registry)
    }

    fn entry_credentials(
        &self,
        entry: &AuthEntry,
        registry: &str,
    ) -> Result<Option<RegistryCredentials>, RegistryError> {
        let make = |username: String, password: String| {
            Some(RegistryCredentials {
                registry: registry.to_string(),
                username,
                password: Secret::from(password),
            })
        };
        if let Some(token) = entry.identitytoken.clone().filter(|t| !t.is_empty()) {
            return Ok(make(IDENTITY_TOKEN_USER.to_string(), token));
        }
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let bad = || {
                config_error(
                    &self.path,
                    format!("the `auth` value for {registry} is not base64 of `user:password`"),
                )
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad())?;
            let text = String::from_utf8(decoded).map_err(|_| bad())?;
            let (user, password) = text.split_once(':').ok_or_else(bad)?;
            return Ok(make(user.to_string(), password.to_string()));
        }
        match (&entry.username, &entry.password) {
            (Some(u), Some(p)) if !u.is_empty() => Ok(make(u.clone(), p.clone())),
            _ => Ok(None),
        }
    }
}

/// Runs `docker-credential-<helper> get`; `None` when the helper has nothing for `server`.
fn run_helper(
    helper: &str,
    server: &str,
    registry: &str,
) -> Result<Option<RegistryCredentials>, RegistryError> {
    run_program(&format!("docker-credential-{helper}"), server, registry)
}

fn run_program(
    program: &str,
    server: &str,
    registry: &str,
) -> Result<Option<RegistryCredentials>, RegistryError> {
    let fail = |message: String| RegistryError::CredentialHelper {
        helper: program.to_string(),
        registry: registry.to_string(),
        message,
    };
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => fail("it is not installed (not on PATH)".into()),
            _ => fail(format!("cannot start it: {e}")),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // The server URL goes on stdin, never in argv.
        stdin
            .write_all(server.as_bytes())
            .map_err(|e| fail(format!("cannot write to it: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("it did not finish: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // The protocol's "nothing stored" answer.
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said = [stdout.trim(), stderr.trim()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(fail(format!("it exited with {}: {said}", out.status)));
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout)
        .map_err(|e| fail(format!("its answer is not the helper protocol's JSON: {e}")))?;
    if answer.username.is_empty() && answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(RegistryCredentials {
        registry: registry.to_string(),
        username: answer.username,
        password: Secret::from(answer.secret),
    }))
}

fn config_error(path: &Path, message: String) -> RegistryError {
    RegistryError::DockerConfig {
        path: path.to_path_buf(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn env_for(dir: &Path) -> impl Fn(&str) -> Option<String> + use<> {
        let dir = dir.display().to_string();
        move |name: &str| (name == "DOCKER_CONFIG").then(|| dir.clone())
    }

    #[test]
    fn auths_in_every_form() {
        let tmp = tempfile::tempdir().unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            tmp.path().join("config.json"),
            format!(
                r#"{{"auths": {{
                    "https://index.docker.io/v1/": {{"auth": "{auth}"}},
                    "localhost:5000": {{"username": "bob", "password": "pw"}},
                    "https://token.example": {{"identitytoken": "refresh"}},
                    "empty.example": {{}}
                }}}}"#
            ),
        )
        .unwrap();
        let env = env_for(tmp.path());
        let config = DockerConfig::load(&env).unwrap().unwrap();
        let hub = config
            .credentials("docker.io", "docker.io")
            .unwrap()
            .unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.expose()),
            ("alice", "s3cret")
        );
        let local = config
            .credentials("localhost:5000", "localhost:5000")
            .unwrap()
            .unwrap();
        assert_eq!(local.username, "bob");
        let token = config
            .credentials("token.example", "token.example")
            .unwrap()
            .unwrap();
        assert!(token.is_identity_token());
        assert_eq!(
            config
                .credentials("empty.example", "empty.example")
                .unwrap(),
            None
        );
        assert_eq!(config.credentials("ghcr.io", "ghcr.io").unwrap(), None);
    }

    #[test]
    fn broken_files_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("config.json"), "{not json").unwrap();
        let err = DockerConfig::load(&env_for(tmp.path())).unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
        std::fs::write(
            tmp.path().join("config.json"),
            r#"{"auths": {"r.example": {"auth": "!!"}}}"#,
        )
        .unwrap();
        let config = DockerConfig::load(&env_for(tmp.path())).unwrap().unwrap();
        let err = config.credentials("r.example", "r.example").unwrap_err();
        assert!(err.to_string().contains("not base64"), "{err}");
        assert!(
            DockerConfig::load(&env_for(&tmp.path().join("none")))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn helpers_are_asked_through_stdin() {
        let tmp = tempfile::tempdir().unwrap();
        // A helper that answers for localhost:5000 only, as the protocol says.
        let helper = tmp.path().join("docker-credential-dd-test");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread server\nif [ \"$server\" = localhost:5000 ]; then \
             echo '{\"ServerURL\":\"localhost:5000\",\"Username\":\"helper-user\",\"Secret\":\"helper-pw\"}'; \
             else echo 'credentials not found in native keychain'; exit 1; fi\n",
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let program = helper.display().to_string();
        let found = run_program(&program, "localhost:5000", "localhost:5000")
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.username.as_str(), found.password.expose()),
            ("helper-user", "helper-pw")
        );
        assert_eq!(run_program(&program, "ghcr.io", "ghcr.io").unwrap(), None);
        let err = run_helper("dd-missing-helper", "ghcr.io", "ghcr.io").unwrap_err();
        assert_eq!(
            err.to_string(),
            "credential helper `docker-credential-dd-missing-helper` failed for ghcr.io: it is not installed (not on PATH)"
        );
    }
}
