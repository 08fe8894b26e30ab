//! Does a registered image exist? The server's view of [`crate::registry`]: its configured
//! credentials, insecure and trusted registries, and an answer phrased as a location load error.

use crate::registry::{DOCKER_HUB, ImageRef, RegistryClient, RegistryError, normalize_host};

pub use crate::registry::RegistryCredentials;

/// How the server reaches registries to check that registered images exist.
#[derive(Debug, Clone, Default)]
pub struct RegistryAccess {
    /// Credentials by registry host (`host[:port]` as written in image references).
    pub credentials: Vec<RegistryCredentials>,
    /// Registries spoken to over plain HTTP, besides `localhost` and `127.0.0.1`.
    pub insecure_registries: Vec<String>,
}

impl RegistryAccess {
    pub fn client(&self) -> RegistryClient {
        RegistryClient::new(self.insecure_registries.clone())
    }

    pub(crate) fn credentials_for(&self, registry: &str) -> Option<&RegistryCredentials> {
        self.credentials.iter().find(|c| c.matches(registry))
    }

    /// Whether the server's agent may contact `registry` (`host[:port]`): Docker Hub, a
    /// registry with credentials, or one of `trusted` (`--registry`). Any other host a
    /// registered image names is never contacted: a token holder must not probe the server's
    /// network through it.
    pub fn trusts(&self, trusted: &[String], registry: &str) -> bool {
        let host = normalize_host(registry);
        host == DOCKER_HUB
            || self.credentials_for(&host).is_some()
            || trusted.iter().any(|t| normalize_host(t) == host)
    }
}

/// The answer of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageCheck {
    Present,
    /// The image is missing, or could not be checked; the message says which and names it.
    Missing(String),
}

/// Checks that `image` exists in its registry if the server trusts that registry; the answer
/// for any other registry is the same whatever is (or is not) listening there.
pub async fn check_trusted_image(
    client: &RegistryClient,
    access: &RegistryAccess,
    trusted: &[String],
    image: &str,
) -> ImageCheck {
    let Ok(r) = ImageRef::parse(image) else {
        return ImageCheck::Missing(format!("image '{image}' is not a valid image reference"));
    };
    if !access.trusts(trusted, &r.registry) {
        return ImageCheck::Missing(format!(
            "image '{image}' is in registry {}, which this server does not check images in; \
             push it to a registry the server trusts, or start the server with --registry {}",
            r.registry, r.registry
        ));
    }
    check_image(client, access, image).await
}

/// Checks that `image` exists in its registry.
pub async fn check_image(
    client: &RegistryClient,
    access: &RegistryAccess,
    image: &str,
) -> ImageCheck {
    let Ok(r) = ImageRef::parse(image) else {
        return ImageCheck::Missing(format!("image '{image}' is not a valid image reference"));
    };
    let credentials = access.credentials_for(&r.registry);
    match client.manifest_exists(&r, credentials).await {
        Ok(true) => ImageCheck::Present,
        Ok(false) => ImageCheck::Missing(format!(
            "image '{image}' was not found in registry {} (no manifest for {}:{}); push it \
             before registering the location",
            r.registry,
            r.path,
            r.reference()
        )),
        Err(e) => ImageCheck::Missing(format!(
            "could not check that image '{image}' exists in registry {}: {}",
            r.registry,
            reason(&e)
        )),
    }
}

/// The error without the registry's name (the message already names it).
fn reason(e: &RegistryError) -> String {
    match e {
        RegistryError::Unreachable { .. } => "cannot connect to the registry".into(),
        RegistryError::Timeout { .. } => "the registry did not answer in time".into(),
        RegistryError::Unauthorized { status, .. } => {
            format!("the registry refused the configured credentials (HTTP {status})")
        }
        RegistryError::CredentialsRequired { .. } => {
            "the registry requires credentials and none are configured for it".into()
        }
        RegistryError::Status { status, .. } => format!("the registry answered HTTP {status}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_credentials_match_every_alias() {
        let access = RegistryAccess {
            credentials: vec![RegistryCredentials {
                registry: "https://index.docker.io/v1/".into(),
                username: "u".into(),
                password: "p".into(),
            }],
            ..Default::default()
        };
        assert!(access.credentials_for("docker.io").is_some());
        assert!(access.credentials_for("ghcr.io").is_none());
        assert!(!format!("{access:?}").contains("\"p\""));
    }

    #[test]
    fn only_docker_hub_and_configured_registries_are_trusted() {
        let access = RegistryAccess {
            credentials: vec![RegistryCredentials {
                registry: "registry.example.com".into(),
                username: "u".into(),
                password: "p".into(),
            }],
            ..Default::default()
        };
        let trusted = ["localhost:5000".to_string()];
        for ok in [
            "docker.io",
            "index.docker.io",
            "registry.example.com",
            "LOCALHOST:5000",
        ] {
            assert!(access.trusts(&trusted, ok), "{ok}");
        }
        for bad in [
            "127.0.0.1:5000",
            "localhost:5001",
            "169.254.169.254",
            "ghcr.io",
        ] {
            assert!(!access.trusts(&trusted, bad), "{bad}");
        }
    }
}
