//! What a location document asks to run: an image or Python-executable files, the code pointer
//! and the environment of its code server, and the key that names this exact code server.
//!
//! The key is a hash of everything that changes what runs (not the revision id): registering
//! the same document again, or rolling back to what already serves, restarts nothing.

use std::path::PathBuf;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::super::blobs::BlobStore;
use super::super::document;
use super::super::load_status::pex_tag_files;
use crate::protocol::hex;

/// Most environment variables one `container_context` may set.
const MAX_ENV_VARS: usize = 256;

/// How the code server runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Runtime {
    /// A container of this image.
    Image(String),
    /// A process: `python{version} source.pex` with `PEX_PATH=deps.pex`.
    Pex {
        python_version: String,
        deps: PathBuf,
        source: PathBuf,
    },
}

/// One code server to run.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub deployment: String,
    pub location: String,
    pub revision: i64,
    pub runtime: Runtime,
    /// `DAGSTER_*` (code pointer, location name) then the document's own variables, which
    /// never replace the agent's.
    pub env: Vec<(String, String)>,
    /// Hex hash naming this code server (see the module comment).
    pub key: String,
}

/// The first 16 hex digits of a key: enough to name a code server's files and log lines.
/// (Keys read back from labels or pid files may be anything: never sliced blindly.)
pub(crate) fn short(key: &str) -> &str {
    key.get(..16).unwrap_or(key)
}

impl Spec {
    /// `--fixed-server-id`: what a restarted `serve` recognises, and why the webserver sees no
    /// needless restart.
    pub(crate) fn server_id(&self) -> String {
        format!("{}/{}/{}", self.deployment, self.location, short(&self.key))
    }
}

/// The spec of `doc`, or why it cannot run (a load error naming the location and the fix).
pub(crate) fn spec(
    deployment: &str,
    location: &str,
    revision: i64,
    doc: &Value,
    blobs: &BlobStore,
) -> Result<Spec, String> {
    let runtime = match document::image(doc) {
        Some(image) => Runtime::Image(image.to_string()),
        None => pex_runtime(deployment, location, doc, blobs)?,
    };
    let mut env = code_pointer(location, doc)?;
    if let Runtime::Image(image) = &runtime {
        env.push(("DAGSTER_CURRENT_IMAGE".into(), image.clone()));
    }
    for (k, v) in context_env(location, doc)? {
        if !env.iter().any(|(have, _)| *have == k) {
            env.push((k, v));
        }
    }
    let key = key(
        deployment,
        location,
        &runtime,
        &env,
        blobs_identity(&runtime),
    );
    Ok(Spec {
        deployment: deployment.to_string(),
        location: location.to_string(),
        revision,
        runtime,
        env,
        key,
    })
}

fn pex_runtime(
    deployment: &str,
    location: &str,
    doc: &Value,
    blobs: &BlobStore,
) -> Result<Runtime, String> {
    let Some(tag) = doc.pointer("/pex_metadata/pex_tag").and_then(Value::as_str) else {
        return Err(format!(
            "location '{location}' has neither an image nor Python-executable files \
             (pex_metadata.pex_tag): nothing to run; register it with --image, or deploy it with \
             `dagster-deploy serverless deploy-python-executable`"
        ));
    };
    let python_version = doc
        .pointer("/pex_metadata/python_version")
        .and_then(Value::as_str)
        .unwrap_or("3.11")
        .to_string();
    if !valid_python_version(&python_version) {
        return Err(format!(
            "location '{location}': pex_metadata.python_version {python_version:?} is not a \
             Python version such as 3.11"
        ));
    }
    let (mut deps, mut source) = (None, None);
    for name in pex_tag_files(tag) {
        let found = blobs
            .lookup(deployment, name)
            .map_err(|e| format!("location '{location}': cannot read file {name}: {e}"))?
            .ok_or_else(|| {
                format!(
                    "location '{location}': the Python executable file {name} of pex_tag \
                     {tag:?} was never uploaded to this server; deploy again with \
                     `dagster-deploy serverless deploy-python-executable`"
                )
            })?;
        if name.starts_with("source-") {
            source = Some(found.path);
        } else {
            deps = Some(found.path);
        }
    }
    match (deps, source) {
        (Some(deps), Some(source)) => Ok(Runtime::Pex {
            python_version,
            deps,
            source,
        }),
        _ => Err(format!(
            "location '{location}': pex_tag {tag:?} must name a deps-*.pex and a source-*.pex \
             file; deploy again with `dagster-deploy serverless deploy-python-executable`"
        )),
    }
}

fn valid_python_version(v: &str) -> bool {
    let mut parts = v.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some("3"), Some(minor), None) if !minor.is_empty() && minor.len() <= 2 && minor.bytes().all(|b| b.is_ascii_digit())
    )
}

/// The code pointer as Dagster's `DAGSTER_*` variables (docs/research/dagster-code-servers.md
/// §5: the autoload one is lower-case after the prefix).
fn code_pointer(location: &str, doc: &Value) -> Result<Vec<(String, String)>, String> {
    let source = doc.get("code_source").unwrap_or(&Value::Null);
    let pointers = [
        ("module_name", "DAGSTER_MODULE_NAME"),
        ("package_name", "DAGSTER_PACKAGE_NAME"),
        ("python_file", "DAGSTER_PYTHON_FILE"),
        (
            "autoload_defs_module_name",
            "DAGSTER_autoload_defs_module_name",
        ),
    ];
    let mut env = vec![("DAGSTER_LOCATION_NAME".to_string(), location.to_string())];
    for (field, var) in pointers {
        if let Some(v) = source.get(field).and_then(Value::as_str) {
            env.push((var.to_string(), v.to_string()));
        }
    }
    if env.len() != 2 {
        return Err(format!(
            "location '{location}' needs exactly one of code_source.module_name, package_name, \
             python_file or autoload_defs_module_name; register it again with one"
        ));
    }
    if let Some(v) = doc.get("attribute").and_then(Value::as_str) {
        env.push(("DAGSTER_ATTRIBUTE".into(), v.to_string()));
    }
    // A Python executable carries its location folder itself (see `process`); the document's
    // working_directory is a path inside an image.
    if document::image(doc).is_some()
        && let Some(v) = doc.get("working_directory").and_then(Value::as_str)
    {
        env.push(("DAGSTER_WORKING_DIRECTORY".into(), v.to_string()));
    }
    Ok(env)
}

/// `container_context.docker.env_vars`, as the Docker agent reads them: `KEY=VALUE` entries.
/// A bare `KEY` (Dagster+ copies it from the agent's environment) is skipped: the server's
/// environment holds its own secrets, and no registered document may read them.
fn context_env(location: &str, doc: &Value) -> Result<Vec<(String, String)>, String> {
    let Some(vars) = doc.pointer("/container_context/docker/env_vars") else {
        return Ok(Vec::new());
    };
    let field = "container_context.docker.env_vars";
    let list = vars.as_array().ok_or_else(|| {
        format!("location '{location}': {field} must be a list of KEY=VALUE strings")
    })?;
    if list.len() > MAX_ENV_VARS {
        return Err(format!(
            "location '{location}': {field} has {} entries, at most {MAX_ENV_VARS} are allowed",
            list.len()
        ));
    }
    let mut env = Vec::new();
    for item in list {
        let text = item.as_str().ok_or_else(|| {
            format!(
                "location '{location}': {field} must be a list of KEY=VALUE strings, found {item}"
            )
        })?;
        let (key, value) = match text.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (text, None),
        };
        let valid = key
            .bytes()
            .enumerate()
            .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
        if key.is_empty() || !valid || text.contains('\0') {
            return Err(format!(
                "location '{location}': {field} entry {text:?} is not KEY=VALUE with a variable \
                 name of letters, digits and underscores"
            ));
        }
        match value {
            Some(v) => env.push((key.to_string(), v.to_string())),
            None => tracing::warn!(
                location,
                variable = key,
                "container_context env var without a value is not passed: the server never \
                 hands its own environment to user code; give it as KEY=VALUE"
            ),
        }
    }
    Ok(env)
}

/// What identifies the files of a Python-executable runtime (their content, not their path).
fn blobs_identity(runtime: &Runtime) -> String {
    match runtime {
        Runtime::Image(_) => String::new(),
        Runtime::Pex { deps, source, .. } => {
            let name = |p: &PathBuf| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            format!("{}:{}", name(deps), name(source))
        }
    }
}

fn key(
    deployment: &str,
    location: &str,
    runtime: &Runtime,
    env: &[(String, String)],
    files: String,
) -> String {
    let mut h = Sha256::new();
    let mut field = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    field(deployment);
    field(location);
    match runtime {
        Runtime::Image(image) => field(image),
        Runtime::Pex { python_version, .. } => {
            field(python_version);
            field(&files);
        }
    }
    for (k, v) in env {
        field(k);
        field(v);
    }
    hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn blobs() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("blobs");
        (dir, store)
    }

    #[test]
    fn an_image_document_becomes_dagster_variables() {
        let (_d, blobs) = blobs();
        let doc = json!({"location_name": "a", "code_source": {"autoload_defs_module_name": "a.defs"},
            "image": "r/a:1", "attribute": "defs", "working_directory": "/app",
            "container_context": {"docker": {"env_vars": ["X=1", "DAGSTER_LOCATION_NAME=evil", "BARE"]}}});
        let s = spec("prod", "a", 3, &doc, &blobs).expect("spec");
        assert_eq!(s.runtime, Runtime::Image("r/a:1".into()));
        let env: Vec<(&str, &str)> = s
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("DAGSTER_LOCATION_NAME", "a"),
                ("DAGSTER_autoload_defs_module_name", "a.defs"),
                ("DAGSTER_ATTRIBUTE", "defs"),
                ("DAGSTER_WORKING_DIRECTORY", "/app"),
                ("DAGSTER_CURRENT_IMAGE", "r/a:1"),
                ("X", "1"),
            ]
        );
        // The same document at another revision is the same code server.
        let again = spec("prod", "a", 9, &doc, &blobs).expect("spec");
        assert_eq!(again.key, s.key);
        let other = spec(
            "prod",
            "a",
            9,
            &json!({"code_source": {"module_name": "m"}, "image": "r/a:2"}),
            &blobs,
        )
        .expect("spec");
        assert_ne!(other.key, s.key);
        assert!(s.server_id().starts_with("prod/a/"));
    }

    #[test]
    fn documents_that_cannot_run_say_why() {
        let (_d, blobs) = blobs();
        let no_runtime = json!({"code_source": {"module_name": "m"}});
        assert!(
            spec("prod", "a", 1, &no_runtime, &blobs)
                .unwrap_err()
                .contains("neither an image")
        );
        let missing = json!({"code_source": {"module_name": "m"},
            "pex_metadata": {"pex_tag": "files=deps-1.pex:source-2.pex", "python_version": "3.11"}});
        assert!(
            spec("prod", "a", 1, &missing, &blobs)
                .unwrap_err()
                .contains("never uploaded")
        );
        let bad_env = json!({"code_source": {"module_name": "m"}, "image": "r/a:1",
            "container_context": {"docker": {"env_vars": ["1X=2"]}}});
        assert!(
            spec("prod", "a", 1, &bad_env, &blobs)
                .unwrap_err()
                .contains("env_vars")
        );
        let bad_version = json!({"code_source": {"module_name": "m"},
            "pex_metadata": {"pex_tag": "files=deps-1.pex:source-2.pex", "python_version": "3.11; rm"}});
        assert!(
            spec("prod", "a", 1, &bad_version, &blobs)
                .unwrap_err()
                .contains("python_version")
        );
    }
}
