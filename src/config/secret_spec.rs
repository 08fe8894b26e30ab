//! Build secrets as settings name them (`dagster-deploy.toml` `secrets`, `--secret`): the
//! syntax of `docker buildx build --secret`. Reading their values is the build's job
//! (`build::secrets`).

use std::fmt;
use std::path::PathBuf;

/// Where one secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecretSource {
    /// An environment variable of this process.
    Env(String),
    /// A file (relative paths from the current directory, as `docker buildx` reads them).
    File(PathBuf),
}

/// `id=ID[,env=VAR|,src=FILE]`: the secret `ID` and its source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretSpec {
    pub id: String,
    pub source: SecretSource,
}

impl fmt::Display for SecretSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            SecretSource::Env(var) => write!(f, "id={},env={var}", self.id),
            SecretSource::File(path) => write!(f, "id={},src={}", self.id, path.display()),
        }
    }
}

impl SecretSpec {
    /// Parses `docker buildx build --secret` syntax: `id=ID` with `env=VAR` or `src=FILE`
    /// (`source=` too, and an optional `type=env|file`); with neither, the variable named `ID`.
    pub fn parse(text: &str) -> Result<SecretSpec, String> {
        let mut id = None;
        let mut env = None;
        let mut src = None;
        let mut kind = None;
        for field in text.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            let Some((key, value)) = field.split_once('=') else {
                return Err(format!("`{field}` is not KEY=VALUE"));
            };
            let value = value.trim();
            if value.is_empty() {
                return Err(format!("`{key}` has no value"));
            }
            match key.trim() {
                "id" => id = Some(value.to_string()),
                "env" => env = Some(value.to_string()),
                "src" | "source" => src = Some(PathBuf::from(value)),
                "type" if value == "env" || value == "file" => kind = Some(value.to_string()),
                "type" => return Err(format!("type `{value}`: only `env` and `file` exist")),
                other => {
                    return Err(format!(
                        "unknown field `{other}` (fields: id, env, src, type)"
                    ));
                }
            }
        }
        let Some(id) = id else {
            return Err("missing `id=`".to_string());
        };
        let source = match (env, src, kind.as_deref()) {
            (Some(_), Some(_), _) => return Err("give `env=` or `src=`, not both".to_string()),
            (Some(var), None, None | Some("env")) => SecretSource::Env(var),
            (None, Some(path), None | Some("file")) => SecretSource::File(path),
            (None, None, Some("file")) => SecretSource::File(PathBuf::from(&id)),
            (None, None, _) => SecretSource::Env(id.clone()),
            _ => return Err("`type` does not match `env=`/`src=`".to_string()),
        };
        Ok(SecretSpec { id, source })
    }
}
