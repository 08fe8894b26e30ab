//! Facts of the deployment protocol that both sides rely on, the client (`api`) and the
//! embedded server (`server`): see docs/protocol.md. Kept here, below both, so neither
//! imports the other.

use serde_json::Value;

/// The deployment of requests (and settings) that name none.
pub const DEFAULT_DEPLOYMENT: &str = "prod";

/// The image a location document runs, if any (Python-executable deploys have none).
pub fn document_image(doc: &Value) -> Option<&str> {
    doc.get("image").and_then(Value::as_str)
}

/// A location document's `git.commit_hash`: the commit it was deployed from.
pub fn document_commit_hash(doc: &Value) -> Option<&str> {
    doc.get("git")
        .and_then(|g| g.get("commit_hash"))
        .and_then(Value::as_str)
}

/// Lowercase hex, as file names keyed by a SHA-256 digest (`deps-<hash>.pex`) and blob names
/// are written.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
