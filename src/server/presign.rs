//! Pre-signed blob URLs, as S3's are to Dagster+ clients: `{base}/blobs/{name}?deployment=D&
//! method=PUT&expires=UNIX&signature=HEX`, where the signature is HMAC-SHA256 over method,
//! deployment, name and expiry with a key only the server knows (`data_dir/blob-signing.key`,
//! created on first start, mode 0600). A URL thus grants one method on one name of one
//! deployment until it expires, and can be handed to any HTTP client without the API token.

use std::io::{ErrorKind, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::blobs::hex;

/// The key file inside the data directory.
pub const KEY_FILE: &str = "blob-signing.key";
/// How long a URL stays valid: long enough to build and upload a large dependency archive
/// after asking for the URL.
pub const URL_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Put,
    Get,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Put => "PUT",
            Method::Get => "GET",
        }
    }
}

#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<key>)")
    }
}

/// Why a URL's signature was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the URL has no signature (and the request no API token)")]
    Missing,
    #[error("the URL expired; ask for a new one with generateServerlessPexUrl")]
    Expired,
    #[error("the URL's signature does not match (another name, deployment, method or server)")]
    Invalid,
}

impl Signer {
    /// Loads the key from `data_dir`, creating it on first use.
    pub fn open(data_dir: &Path) -> std::io::Result<Signer> {
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = unhex(text.trim())
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| {
                        std::io::Error::other(format!(
                            "{} is not a 64-digit hex key; remove it to have a new one made \
                         (URLs handed out before stop working)",
                            path.display()
                        ))
                    })?;
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                Ok(Signer { key })
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
                let mut opts = std::fs::File::options();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(&path)?;
                f.write_all(hex(&key).as_bytes())?;
                f.sync_all()?;
                Ok(Signer { key })
            }
            Err(e) => Err(e),
        }
    }

    #[cfg(test)]
    fn with_key(key: [u8; 32]) -> Signer {
        Signer { key }
    }

    fn signature(&self, method: Method, deployment: &str, name: &str, expires: u64) -> String {
        let message = format!("{}\n{deployment}\n{name}\n{expires}", method.as_str());
        hex(&hmac_sha256(&self.key, message.as_bytes()))
    }

    /// The query string (`deployment=..&method=..&expires=..&signature=..`) of a URL for
    /// `name` in `deployment` (a deployment name is URL-safe, see `check_deployment_name`).
    pub fn query(&self, method: Method, deployment: &str, name: &str, now: SystemTime) -> String {
        let expires = unix(now) + URL_LIFETIME.as_secs();
        let signature = self.signature(method, deployment, name, expires);
        format!(
            "deployment={deployment}&method={}&expires={expires}&signature={signature}",
            method.as_str()
        )
    }

    /// Checks a URL's `method`, `expires` and `signature` query values for `name`; returns
    /// the deployment the URL was signed for.
    pub fn verify<'q>(
        &self,
        method: Method,
        name: &str,
        query: &'q std::collections::HashMap<String, String>,
        now: SystemTime,
    ) -> Result<&'q str, SignatureError> {
        let (Some(deployment), Some(m), Some(expires), Some(signature)) = (
            query.get("deployment"),
            query.get("method"),
            query.get("expires"),
            query.get("signature"),
        ) else {
            return Err(SignatureError::Missing);
        };
        let expires: u64 = expires.parse().map_err(|_| SignatureError::Invalid)?;
        if m != method.as_str() {
            return Err(SignatureError::Invalid);
        }
        let expected = self.signature(method, deployment, name, expires);
        if !constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
            return Err(SignatureError::Invalid);
        }
        if unix(now) > expires {
            return Err(SignatureError::Expired);
        }
        Ok(deployment)
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// HMAC (RFC 2104) with SHA-256.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn parse(q: &str) -> HashMap<String, String> {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_url_grants_one_method_on_one_name_until_it_expires() {
        let s = Signer::with_key([7; 32]);
        let now = SystemTime::now();
        let q = parse(&s.query(Method::Put, "prod", "deps-1.pex", now));
        assert_eq!(s.verify(Method::Put, "deps-1.pex", &q, now), Ok("prod"));
        let mut staging = q.clone();
        staging.insert("deployment".into(), "staging".into());
        assert_eq!(
            s.verify(Method::Put, "deps-1.pex", &staging, now),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            s.verify(Method::Get, "deps-1.pex", &q, now),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            s.verify(Method::Put, "deps-2.pex", &q, now),
            Err(SignatureError::Invalid)
        );
        let later = now + URL_LIFETIME + Duration::from_secs(5);
        assert_eq!(
            s.verify(Method::Put, "deps-1.pex", &q, later),
            Err(SignatureError::Expired)
        );
        let other = Signer::with_key([8; 32]);
        assert_eq!(
            other.verify(Method::Put, "deps-1.pex", &q, now),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            s.verify(Method::Put, "deps-1.pex", &HashMap::new(), now),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn the_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = Signer::open(dir.path()).unwrap();
        let b = Signer::open(dir.path()).unwrap();
        assert_eq!(a.key, b.key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
