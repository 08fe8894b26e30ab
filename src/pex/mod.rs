//! Python-executable (Docker-free) deploys: each location becomes a dependencies archive
//! (`deps-<key>.pex`, built by `pex` from a `uv` resolve, shared by every location with the same
//! requirements, and built and uploaded only when the server lacks it) and a source archive
//! (`source-<hash>.pex`, built here in milliseconds). Both go to the deployment's file store
//! through `generateServerlessPexUrl`; the location is then registered with
//! `pex_metadata{pex_tag: "files=deps-..:source-..", python_version}` by the caller.
//!
//! Phases, each reported: resolve (requirements → keys), check (what the server has), build
//! deps, build source, upload. Any failure fails the whole run before anything is registered.

pub mod deps;
pub mod platform;
pub mod requirements;
pub mod source;
pub mod tools;
pub mod upload;
pub mod zip;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use base64::Engine as _;

use crate::api::{ApiError, Client};
use requirements::Requirements;
use upload::Method;

/// Why a Python-executable build or upload failed; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PexError {
    #[error(
        "{} has no requirements.txt, pyproject.toml or setup.py, so its Python dependencies \
         (dagster among them) are unknown", dir.display()
    )]
    NoProject { dir: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{message}")]
    Input { message: String, hint: String },
    #[error("no Python {version} found on PATH (python{version}); it is needed {why}")]
    NoPython { version: String, why: String },
    #[error("cannot install pex and uv: {message}")]
    ToolInstall { message: String },
    #[error(
        "the requirements of {locations} cannot be resolved for Python on Linux x86_64; the \
         resolver said:\n{output}\n(requirements:\n{requirements})"
    )]
    Resolve {
        locations: String,
        requirements: String,
        output: String,
    },
    #[error(
        "the requirements of {locations} do not include dagster, so the code location could not \
         load"
    )]
    NoDagster { locations: String },
    #[error("pex could not build the dependencies of {locations}:\n{output}")]
    DepsBuild { locations: String, output: String },
    #[error("uploading {file} failed: {message}; nothing was registered")]
    Upload { file: String, message: String },
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl PexError {
    pub fn io(path: &Path, source: std::io::Error) -> PexError {
        PexError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            PexError::NoProject { .. } => "pex-no-project",
            PexError::Io { .. } => "pex-io",
            PexError::Input { .. } => "pex-invalid-input",
            PexError::NoPython { .. } => "pex-no-python",
            PexError::ToolInstall { .. } => "pex-tools",
            PexError::Resolve { .. } => "pex-resolve",
            PexError::NoDagster { .. } => "pex-no-dagster",
            PexError::DepsBuild { .. } => "pex-deps-build",
            PexError::Upload { .. } => "pex-upload",
            PexError::Api(e) => e.code(),
        }
    }

    pub fn is_usage(&self) -> bool {
        match self {
            PexError::Api(e) => e.is_usage(),
            _ => false,
        }
    }

    pub fn hint(&self) -> String {
        match self {
            PexError::NoProject { .. } => "add a requirements.txt (with at least `dagster`) or a \
                pyproject.toml to the location's folder, or point at the right folder (the \
                argument, or build.directory in dagster_cloud.yaml)"
                .into(),
            PexError::Io { .. } => "check the path exists and is readable".into(),
            PexError::Input { hint, .. } => hint.clone(),
            PexError::NoPython { version, .. } => format!(
                "install Python {version} (e.g. `uv python install {version}` and put it on \
                 PATH), or pass another --python-version"
            ),
            PexError::ToolInstall { .. } => "install pex (>= 2.60) and uv yourself and put them \
                on PATH, or set DAGSTER_DEPLOY_PEX and DAGSTER_DEPLOY_UV"
                .into(),
            PexError::Resolve { .. } => "fix the requirement the resolver names (a typo, or a \
                version that does not exist for this Python), or pick another --python-version"
                .into(),
            PexError::NoDagster { .. } => "add `dagster` (and `dagster-cloud` for Dagster+ \
                Serverless) to the location's requirements.txt or pyproject.toml"
                .into(),
            PexError::DepsBuild { .. } => "a requirement may have no wheel for Linux x86_64: pin \
                a version that has one"
                .into(),
            PexError::Upload { .. } => "check the connection to the server and run the deploy \
                again; files already uploaded are not sent twice"
                .into(),
            PexError::Api(e) => e.hint(),
        }
    }
}

/// One location to build.
#[derive(Debug, Clone)]
pub struct PexLocation {
    pub name: String,
    /// The project folder (requirements, code).
    pub dir: PathBuf,
}

/// `--build-method`: where dependencies are built. Builds always target Linux x86_64 wheels,
/// so the local machine serves for all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildMethod {
    Local,
    Docker,
    DockerFallback,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub python_version: String,
    pub deps_cache_from: Option<String>,
    pub deps_cache_to: Option<String>,
    pub build_method: BuildMethod,
}

/// What was built and uploaded for one location.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Built {
    pub location: String,
    pub pex_tag: String,
    pub python_version: String,
    pub deps: String,
    pub source: String,
    /// The files this run uploaded (the rest the server had).
    pub uploaded: Vec<String>,
    pub deps_built: bool,
}

/// Where the PEX flow reports to people, as builds report through `build::BuildReporter`;
/// `progress::Reporter` implements it.
pub trait PexReporter: Sync {
    /// A line of progress (`[deps] ...`, `[upload] ...`).
    fn progress(&self, line: &str);
    /// A warning about one location's files.
    fn warn(&self, location: &str, text: &str);
}

/// `requirements-<key>[-<base64 tag>].txt`, the reference's deps cache record.
fn cache_record_name(key: &str, tag: &str) -> String {
    let tag = base64::engine::general_purpose::URL_SAFE.encode(tag.as_bytes());
    format!("requirements-{key}-{tag}.txt")
}

/// Builds and uploads every location's archives; returns them in the order given. Nothing is
/// registered here, and an error means some file may be missing on the server.
pub async fn build_and_upload(
    client: &Client,
    locations: &[PexLocation],
    opts: &Options,
    reporter: &dyn PexReporter,
) -> Result<Vec<Built>, PexError> {
    platform::parse_version(&opts.python_version).map_err(|message| PexError::Input {
        message,
        hint: "pass --python-version X.Y (default 3.11)".into(),
    })?;
    if opts.build_method == BuildMethod::Docker {
        reporter.progress(
            "Note: --build-method docker builds here too: the archives target Linux x86_64 \
             wheels wherever they are built, so no container is needed.",
        );
    }
    let started = Instant::now();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .map_err(|e| PexError::Upload {
            file: "(client)".into(),
            message: e.to_string(),
        })?;

    // ---- resolve: requirements and keys ------------------------------------------------
    let mut python: Option<PathBuf> = None;
    let mut reqs: Vec<(Requirements, String)> = Vec::new();
    for loc in locations {
        let mut find_python = || -> Result<PathBuf, PexError> {
            if let Some(p) = &python {
                return Ok(p.clone());
            }
            let p = tools::python(
                &opts.python_version,
                &format!("to read the requirements of {}/setup.py", loc.dir.display()),
            )?;
            python = Some(p.clone());
            Ok(p)
        };
        let r = requirements::collect(&loc.dir, &mut find_python)
            .map_err(|e| in_location(&loc.name, e))?;
        let key = deps::key(&r, &opts.python_version);
        reporter.progress(&format!(
            "[resolve] {}: {} requirements, {} local packages, dependencies key {key}",
            loc.name,
            r.lines.len(),
            r.local_packages.len()
        ));
        reqs.push((r, key));
    }

    // ---- check: which dependency archives the server has -------------------------------
    let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, (_, key)) in reqs.iter().enumerate() {
        by_key.entry(key.clone()).or_default().push(i);
    }
    let keys: Vec<String> = by_key.keys().cloned().collect();
    let mut deps_name: BTreeMap<String, String> = keys
        .iter()
        .map(|k| (k.clone(), deps::file_name(k)))
        .collect();
    if let Some(tag) = &opts.deps_cache_from {
        let names: Vec<String> = keys.iter().map(|k| cache_record_name(k, tag)).collect();
        let got = upload::urls(client, &names, Method::Get).await?;
        for (k, url) in keys.iter().zip(got) {
            if let Ok(Some(body)) = upload::get(&http, &url).await
                && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
                && let Some(n) = v["deps_pex_name"].as_str()
            {
                deps_name.insert(k.clone(), n.to_string());
            }
        }
    }
    let names: Vec<String> = keys.iter().map(|k| deps_name[k].clone()).collect();
    let get_urls = upload::urls(client, &names, Method::Get).await?;
    let mut on_server = BTreeMap::new();
    for (k, url) in keys.iter().zip(&get_urls) {
        on_server.insert(k.clone(), upload::exists(&http, url).await);
    }

    // ---- build deps: only what the server lacks (and the local cache too) ---------------
    let mut tools_found: Option<tools::Tools> = None;
    let mut get_tools = |reporter: &dyn PexReporter| -> Result<tools::Tools, PexError> {
        if let Some(t) = &tools_found {
            return Ok(t.clone());
        }
        let t = tools::find_or_install(reporter)?;
        tools_found = Some(t.clone());
        Ok(t)
    };
    let mut to_upload: Vec<(String, PathBuf)> = Vec::new();
    let mut built_keys = BTreeMap::new();
    let mut dagster_versions: BTreeMap<String, String> = BTreeMap::new();
    for (key, idx) in &by_key {
        let names: Vec<&str> = idx.iter().map(|&i| locations[i].name.as_str()).collect();
        if on_server[key] {
            reporter.progress(&format!(
                "[deps] {} is on the server already (used by {}): not built, not uploaded",
                deps_name[key],
                names.join(", ")
            ));
            continue;
        }
        let built = match deps::cached(key) {
            Some(b) => {
                reporter.progress(&format!(
                    "[deps] {} found in the local cache {}",
                    deps_name[key],
                    deps::cache_dir().display()
                ));
                b
            }
            None => {
                let t0 = Instant::now();
                reporter.progress(&format!(
                    "[deps] building {} for {} (Python {}, Linux x86_64): uv resolves, pex builds",
                    deps_name[key],
                    names.join(", "),
                    opts.python_version
                ));
                let tools = get_tools(reporter)?;
                let b = deps::build(
                    &reqs[idx[0]].0,
                    &opts.python_version,
                    key,
                    &tools,
                    &names.join(", "),
                )?;
                reporter.progress(&format!(
                    "[deps] built {} ({}, Dagster {}) in {:.1} s",
                    deps_name[key],
                    source::human_size(file_size(&b.path)),
                    b.dagster_version,
                    t0.elapsed().as_secs_f64()
                ));
                b
            }
        };
        dagster_versions.insert(key.clone(), built.dagster_version.clone());
        // A cached archive under the reference's cache name keeps that name.
        deps_name.insert(key.clone(), deps::file_name(key));
        to_upload.push((deps::file_name(key), built.path));
        built_keys.insert(key.clone(), true);
    }

    // ---- build source ------------------------------------------------------------------
    let out_dir = tempfile::Builder::new()
        .prefix("dagster-deploy-pex-")
        .tempdir()
        .map_err(|e| PexError::io(&std::env::temp_dir(), e))?;
    let template = {
        let tools = get_tools(reporter)?;
        source::template(&tools, &opts.python_version)?
    };
    let mut sources = Vec::new();
    for (loc, (r, _)) in locations.iter().zip(&reqs) {
        let t0 = Instant::now();
        let b = source::build(
            &template,
            &loc.dir,
            &r.local_packages,
            out_dir.path(),
            reporter,
            &loc.name,
        )
        .map_err(|e| in_location(&loc.name, e))?;
        reporter.progress(&format!(
            "[source] {}: {} ({} files, {}) in {} ms",
            loc.name,
            b.name,
            b.files,
            source::human_size(file_size(&b.path)),
            t0.elapsed().as_millis()
        ));
        sources.push(b);
    }
    let source_names: Vec<String> = sources.iter().map(|s| s.name.clone()).collect();
    let source_get = upload::urls(client, &source_names, Method::Get).await?;
    for (s, url) in sources.iter().zip(&source_get) {
        if upload::exists(&http, url).await {
            reporter.progress(&format!("[upload] {} is on the server already", s.name));
        } else if !to_upload.iter().any(|(n, _)| n == &s.name) {
            to_upload.push((s.name.clone(), s.path.clone()));
        }
    }

    // ---- upload ------------------------------------------------------------------------
    let upload_names: Vec<String> = to_upload.iter().map(|(n, _)| n.clone()).collect();
    let put_urls = upload::urls(client, &upload_names, Method::Put).await?;
    for ((name, path), url) in to_upload.iter().zip(&put_urls) {
        let size = file_size(path);
        reporter.progress(&format!(
            "[upload] {name} ({})...",
            source::human_size(size)
        ));
        let took = upload::put(&http, url, path).await?;
        let secs = took.as_secs_f64().max(0.001);
        reporter.progress(&format!(
            "[upload] {name}: {} in {secs:.2} s ({}/s)",
            source::human_size(size),
            source::human_size((size as f64 / secs) as u64)
        ));
    }
    if let Some(tag) = &opts.deps_cache_to {
        let records: Vec<(String, Vec<u8>)> = keys
            .iter()
            .map(|k| {
                let body = serde_json::json!({
                    "deps_pex_name": deps_name[k],
                    "dagster_version": dagster_versions.get(k).cloned()
                        .or_else(|| deps::cached(k).map(|b| b.dagster_version))
                        .unwrap_or_else(|| "unknown".into()),
                });
                (cache_record_name(k, tag), body.to_string().into_bytes())
            })
            .collect();
        let names: Vec<String> = records.iter().map(|(n, _)| n.clone()).collect();
        let urls = upload::urls(client, &names, Method::Put).await?;
        for ((name, body), url) in records.into_iter().zip(urls) {
            upload::put_bytes(&http, &url, &name, body).await?;
        }
        reporter.progress(&format!(
            "[upload] recorded the dependencies under cache tag {tag:?}"
        ));
    }
    reporter.progress(&format!(
        "[upload] done: {} file(s) sent, {:.1} s since start",
        to_upload.len(),
        started.elapsed().as_secs_f64()
    ));

    Ok(locations
        .iter()
        .zip(&reqs)
        .zip(sources)
        .map(|((loc, (_, key)), src)| {
            let deps = deps_name[key].clone();
            let mut files = [deps.clone(), src.name.clone()];
            files.sort();
            Built {
                location: loc.name.clone(),
                pex_tag: format!("files={}", files.join(":")),
                python_version: opts.python_version.clone(),
                uploaded: upload_names
                    .iter()
                    .filter(|n| **n == deps || **n == src.name)
                    .cloned()
                    .collect(),
                deps_built: built_keys.contains_key(key),
                deps,
                source: src.name,
            }
        })
        .collect())
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// The error, with the location named when the message does not say it.
fn in_location(name: &str, e: PexError) -> PexError {
    match e {
        PexError::Input { message, hint } => PexError::Input {
            message: format!("location {name}: {message}"),
            hint,
        },
        PexError::NoProject { dir } => PexError::Input {
            message: format!(
                "location {name}: {}",
                PexError::NoProject { dir: dir.clone() }
            ),
            hint: PexError::NoProject { dir }.hint(),
        },
        other => other,
    }
}
