//! Image references (`[host[:port]/]path[:tag][@digest]`), split once for both consumers: the
//! engine wants the name as written plus a tag; the registry HTTP API wants the host, the
//! repository path inside it and a tag or digest.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use super::RegistryError;

/// Docker Hub's name in references that name no registry.
pub const DOCKER_HUB: &str = "docker.io";

/// One path component of a repository (Docker's reference grammar).
static COMPONENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$").expect("a valid constant pattern")
});
static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[\w][\w.-]{0,127}$").expect("a valid constant pattern"));
static DIGEST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$")
        .expect("a valid constant pattern")
});
static HOST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")
        .expect("a valid constant pattern")
});

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `host[:port]` as written; [`DOCKER_HUB`] when the reference names none.
    pub registry: String,
    /// The repository inside the registry (`team/app`; `library/busybox` for Docker Hub's
    /// official images).
    pub path: String,
    /// The name as written, without tag or digest: what the engine is given.
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses a reference; without tag or digest the tag is `latest`.
    pub fn parse(reference: &str) -> Result<ImageRef, RegistryError> {
        let mut image = ImageRef::parse_any(reference)?;
        if image.tag.is_none() && image.digest.is_none() {
            image.tag = Some("latest".to_string());
        }
        Ok(image)
    }

    /// Parses a repository name that must carry neither tag nor digest (`build.registry`).
    pub fn repository(name: &str) -> Result<ImageRef, RegistryError> {
        let image = ImageRef::parse_any(name)?;
        if image.tag.is_some() || image.digest.is_some() {
            return Err(invalid(
                name,
                "a repository is expected here, without `:tag` or `@digest`",
            ));
        }
        Ok(image)
    }

    fn parse_any(reference: &str) -> Result<ImageRef, RegistryError> {
        let text = reference.trim();
        if text.is_empty() {
            return Err(invalid(reference, "it is empty"));
        }
        if text.contains(char::is_whitespace) {
            return Err(invalid(reference, "it contains white space"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                if !DIGEST.is_match(digest) {
                    return Err(invalid(reference, "the digest is not `algorithm:hex`"));
                }
                (rest, Some(digest.to_string()))
            }
            None => (text, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(colon) => (
                &rest[..last_slash + colon],
                Some(rest[last_slash + colon + 1..].to_string()),
            ),
            None => (rest, None),
        };
        if let Some(tag) = &tag
            && !TAG.is_match(tag)
        {
            return Err(invalid(
                reference,
                "a tag is 1 to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`",
            ));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                if !HOST.is_match(first) {
                    return Err(invalid(
                        reference,
                        "the registry host is not a valid host[:port]",
                    ));
                }
                (first.to_string(), rest.to_string())
            }
            Some(_) => (DOCKER_HUB.to_string(), name.to_string()),
            None => (DOCKER_HUB.to_string(), format!("library/{name}")),
        };
        if path.is_empty() || !path.split('/').all(|c| COMPONENT.is_match(c)) {
            return Err(invalid(
                reference,
                "the repository name must be lower-case letters and digits, separated by `/`, \
                 `.`, `_` or `-`",
            ));
        }
        Ok(ImageRef {
            registry,
            path,
            name: name.to_string(),
            tag,
            digest,
        })
    }

    /// The same repository with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<ImageRef, RegistryError> {
        let full = format!("{}:{tag}", self.name);
        if !TAG.is_match(tag) {
            return Err(invalid(
                &full,
                "a tag is 1 to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`",
            ));
        }
        Ok(ImageRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// What the registry API addresses a manifest by: the digest when there is one, else the tag.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The host the registry API is reached at (Docker Hub's API lives on another name).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn invalid(reference: &str, reason: &str) -> RegistryError {
    RegistryError::InvalidReference {
        reference: reference.to_string(),
        reason: reason.to_string(),
    }
}

/// Turns any text into a valid tag fragment: characters a tag cannot hold become `-`.
pub fn tag_fragment(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    match cleaned.chars().next() {
        Some('.' | '-') | None => format!("_{cleaned}"),
        _ => cleaned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(r: &str) -> (String, String, String, Option<String>, Option<String>) {
        let i = ImageRef::parse(r).unwrap();
        (i.registry, i.path, i.name, i.tag, i.digest)
    }

    #[test]
    fn splits_references() {
        let s = |v: &str| v.to_string();
        assert_eq!(
            parts("localhost:5000/team/app:v1"),
            (
                s("localhost:5000"),
                s("team/app"),
                s("localhost:5000/team/app"),
                Some(s("v1")),
                None
            )
        );
        assert_eq!(
            parts("busybox"),
            (
                s("docker.io"),
                s("library/busybox"),
                s("busybox"),
                Some(s("latest")),
                None
            )
        );
        assert_eq!(parts("me/app:1").1, "me/app");
        assert_eq!(parts("ghcr.io/o/a").0, "ghcr.io");
        let digest = format!("sha256:{}", "a".repeat(64));
        let d = ImageRef::parse(&format!("reg:5000/app@{digest}")).unwrap();
        assert_eq!((d.tag.as_deref(), d.reference()), (None, digest.as_str()));
        assert_eq!(d.to_string(), format!("reg:5000/app@{digest}"));
        assert_eq!(
            ImageRef::parse("app:1").unwrap().to_string(),
            "app:1".to_string()
        );
    }

    #[test]
    fn refuses_malformed_references() {
        for bad in [
            "",
            "app:",
            ":v1",
            "App/x",
            "a b",
            "reg:5000/app@sha256:xyz",
            "a//b",
            "app:-x",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let err = ImageRef::repository("localhost:5000/app:v1").unwrap_err();
        assert!(err.to_string().contains("without `:tag`"), "{err}");
        assert!(ImageRef::repository("localhost:5000/app").is_ok());
    }

    #[test]
    fn tags_and_fragments() {
        let repo = ImageRef::repository("localhost:5000/example").unwrap();
        let t = repo.with_tag("ingest-ck-1234").unwrap();
        assert_eq!(t.to_string(), "localhost:5000/example:ingest-ck-1234");
        assert!(repo.with_tag("bad tag").is_err());
        assert_eq!(tag_fragment("my loc/é"), "my-loc--");
        assert_eq!(tag_fragment("-x"), "_-x");
    }
}
