//! Build secrets (`RUN --mount=type=secret,id=ID`): where each comes from, in the syntax of
//! `docker buildx build --secret`, and their values, read only when a build starts and handed
//! to the engine through the BuildKit session, never through the request, a file in the
//! context, a build argument or a label. So they are not in the image, its history, the content
//! key, logs or `--json`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::config::Env;

/// Largest secret accepted (BuildKit's own limit is 500 KiB).
pub const MAX_SECRET_SIZE: u64 = 500 * 1024;

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

    /// Reads the value now.
    pub fn read(&self, env: Env) -> Result<SecretValue, SecretError> {
        let value = match &self.source {
            SecretSource::Env(var) => {
                env(var)
                    .map(String::into_bytes)
                    .ok_or_else(|| SecretError::MissingEnv {
                        id: self.id.clone(),
                        var: var.clone(),
                    })?
            }
            SecretSource::File(path) => {
                let io = |source| SecretError::File {
                    id: self.id.clone(),
                    path: path.clone(),
                    source,
                };
                let size = std::fs::metadata(path).map_err(io)?.len();
                if size > MAX_SECRET_SIZE {
                    return Err(SecretError::TooLarge {
                        id: self.id.clone(),
                        size,
                    });
                }
                std::fs::read(path).map_err(io)?
            }
        };
        Ok(SecretValue(value))
    }
}

/// A secret's bytes: never printed, not even by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Vec<u8>);

impl SecretValue {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The secrets of one build, by id.
pub type SecretValues = BTreeMap<String, SecretValue>;

/// Reads every secret (later specs of the same id win, so flags override the settings file).
pub fn read_all(specs: &[SecretSpec], env: Env) -> Result<SecretValues, SecretError> {
    let mut values = SecretValues::new();
    for spec in specs {
        let value = spec.read(env)?;
        // GitHub masks line by line: a multi-line secret (a netrc) is masked per line too.
        if let Ok(text) = std::str::from_utf8(value.expose()) {
            crate::ci::github::mask(env, text);
            for line in text.lines().filter(|l| l.trim().len() >= 4) {
                crate::ci::github::mask(env, line);
            }
        }
        values.insert(spec.id.clone(), value);
    }
    Ok(values)
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("build secret `{id}`: the environment variable {var} is not set")]
    MissingEnv { id: String, var: String },
    #[error("build secret `{id}`: cannot read {}: {source}", path.display())]
    File {
        id: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("build secret `{id}` is {size} bytes, more than BuildKit's limit of {MAX_SECRET_SIZE}")]
    TooLarge { id: String, size: u64 },
}

impl SecretError {
    pub fn hint(&self) -> String {
        match self {
            SecretError::MissingEnv { id, var } => format!(
                "set {var} for this command, or point --secret id={id} (or `secrets` in \
                 dagster-deploy.toml) at another variable (`env=VAR`) or a file (`src=FILE`)"
            ),
            SecretError::File { id, .. } => format!(
                "fix the path of secret `{id}` (--secret id={id},src=FILE or `secrets` in \
                 dagster-deploy.toml; relative paths start at the current directory)"
            ),
            SecretError::TooLarge { .. } => {
                "mount a smaller secret (a token, not a whole credentials store)".into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_syntax() {
        let env = |id: &str, var: &str| SecretSpec {
            id: id.into(),
            source: SecretSource::Env(var.into()),
        };
        assert_eq!(
            SecretSpec::parse("id=tok,env=TOKEN"),
            Ok(env("tok", "TOKEN"))
        );
        assert_eq!(SecretSpec::parse("id=TOKEN"), Ok(env("TOKEN", "TOKEN")));
        assert_eq!(
            SecretSpec::parse("type=file,id=netrc,source=/root/.netrc"),
            Ok(SecretSpec {
                id: "netrc".into(),
                source: SecretSource::File("/root/.netrc".into())
            })
        );
        assert_eq!(
            SecretSpec::parse("id=a,src=f").map(|s| s.to_string()),
            Ok("id=a,src=f".to_string())
        );
        for bad in [
            "env=X",
            "id=a,env=X,src=f",
            "id=a,kind=x",
            "id",
            "id=a,type=ssh",
        ] {
            assert!(SecretSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_values_and_names_what_is_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("tok");
        std::fs::write(&file, "from-file").unwrap();
        let env = |name: &str| (name == "TOKEN").then(|| "from-env".to_string());
        let specs = [
            SecretSpec::parse("id=a,env=TOKEN").unwrap(),
            SecretSpec::parse(&format!("id=b,src={}", file.display())).unwrap(),
        ];
        let values = read_all(&specs, &env).unwrap();
        assert_eq!(values["a"].expose(), b"from-env");
        assert_eq!(values["b"].expose(), b"from-file");
        assert_eq!(format!("{:?}", values["a"]), "<redacted>");

        let err = read_all(&[SecretSpec::parse("id=c,env=NOPE").unwrap()], &env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "build secret `c`: the environment variable NOPE is not set"
        );
        let missing = tmp.path().join("missing");
        let spec = SecretSpec::parse(&format!("id=d,src={}", missing.display())).unwrap();
        let err = read_all(&[spec], &env).unwrap_err();
        assert!(
            err.to_string().starts_with("build secret `d`: cannot read"),
            "{err}"
        );
        assert!(
            err.hint().contains("--secret id=d,src=FILE"),
            "{}",
            err.hint()
        );
    }
}
