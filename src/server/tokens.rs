//! API tokens: random 32-byte secrets shown once; only their SHA-256 is stored.

use sha2::{Digest, Sha256};

use super::error::StoreError;

/// Every token starts with this, so leaked tokens are easy to recognise (and to scan for).
pub const TOKEN_PREFIX: &str = "ddp_";

/// What a token may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScope {
    /// One deployment only; organisation-level operations are refused.
    Deployment(String),
    /// Every deployment, and organisation-level operations (branch deployments, settings).
    Organization,
}

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: i64,
    pub label: String,
    pub scope: TokenScope,
    pub created_at_ms: i64,
    pub revoked: bool,
    /// When it last authenticated a request (recorded at most once a minute).
    pub last_used_at_ms: Option<i64>,
}

/// Who made a change; recorded with every revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The token used, when the change came through the API.
    pub token_id: Option<i64>,
    /// A human-readable name: the token's label, or e.g. `local` for the direct store API.
    pub label: String,
}

impl Actor {
    /// A change made without a token (the local store used by `deploy` without Dagster+).
    pub fn local(label: impl Into<String>) -> Self {
        Actor {
            token_id: None,
            label: label.into(),
        }
    }

    pub fn from_token(token: &TokenInfo) -> Self {
        Actor {
            token_id: Some(token.id),
            label: token.label.clone(),
        }
    }
}

/// A fresh random token (`ddp_` + 64 hex digits).
pub fn generate() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        StoreError::Database(format!("cannot get random bytes for a token: {e}").into())
    })?;
    Ok(format!("{TOKEN_PREFIX}{}", hex(&bytes)))
}

/// The stored form of a token. Random 256-bit secrets need no salt or slow hash.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_prefixed() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_ne!(a, b);
        assert_ne!(hash(&a), hash(&b));
    }
}
