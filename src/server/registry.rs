//! Does a registered image exist? The server's view of [`crate::registry`]: its configured
//! credentials and insecure registries, and an answer phrased as a location load error.

use crate::registry::{ImageRef, RegistryClient, RegistryError};

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

    fn credentials_for(&self, registry: &str) -> Option<&RegistryCredentials> {
        self.credentials.iter().find(|c| c.matches(registry))
    }
}

/// The answer of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageCheck {
    Present,
    /// The image is missing, or could not be checked; the message says which and names it.
    Missing(String),
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
}
