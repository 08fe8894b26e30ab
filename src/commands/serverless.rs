//! `serverless deploy-python-executable`: build and upload each location's PEX files, then
//! register the locations (only once every upload succeeded) and wait for them to load.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::compat::{deployment_client, settings, wait_and_report};
use crate::api::document::{self, DocumentFlags, GitMetadata};
use crate::api::ops;
use crate::api::wait::{self, WaitOptions};
use crate::cli::serverless::{BuildMethodArg, PexDeployArgs, ServerlessCommand};
use crate::error::Error;
use crate::pex::{self, BuildMethod, Options, PexLocation, requirements::PROJECT_FILES};

pub fn run(command: &ServerlessCommand) -> Result<u8, Error> {
    match command {
        ServerlessCommand::DeployPythonExecutable(a) => {
            super::runtime()?.block_on(deploy_python_executable(a))
        }
    }
}

/// One location: its folder and its entry from the location file (if any).
struct Target {
    name: String,
    dir: PathBuf,
    entry: Option<Map<String, Value>>,
}

async fn deploy_python_executable(a: &PexDeployArgs) -> Result<u8, Error> {
    let s = settings(&a.connection, Some(&a.wait))?;
    if a.base_image_tag.is_some() {
        return Err(Error::Usage {
            message: "--base-image-tag is not supported by dagster-deploy".into(),
            hint: "pass the full image with --image instead".into(),
        });
    }
    let targets = targets(a)?;
    let what = "serverless deploy-python-executable";
    let client = deployment_client(&s, what)?;
    let opts = Options {
        python_version: a.python_version.clone(),
        deps_cache_from: a.deps_cache_from.clone(),
        deps_cache_to: a.deps_cache_to.clone(),
        build_method: match a.build_method {
            BuildMethodArg::Local => BuildMethod::Local,
            BuildMethodArg::Docker => BuildMethod::Docker,
            BuildMethodArg::DockerFallback => BuildMethod::DockerFallback,
        },
    };
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    eprintln!(
        "Deploying {} as Python executables (Python {})",
        names.join(", "),
        opts.python_version
    );
    let locations: Vec<PexLocation> = targets
        .iter()
        .map(|t| PexLocation {
            name: t.name.clone(),
            dir: t.dir.clone(),
        })
        .collect();
    let say = |m: &str| eprintln!("{m}");
    let built = pex::build_and_upload(&client, &locations, &opts, &say).await?;

    let documents: Vec<Value> = targets
        .iter()
        .zip(&built)
        .map(|(t, b)| {
            let flags = DocumentFlags {
                pex_tag: Some(b.pex_tag.clone()),
                // As the reference: a given image pins its own Python.
                python_version: a.image.is_none().then(|| b.python_version.clone()),
                ..super::compat::document_flags(&a.code, a.image.clone())
            };
            document::location_document(&t.name, t.entry.as_ref(), &flags)
        })
        .collect();
    eprintln!("[register] {}", names.join(", "));
    if documents.len() == 1 {
        ops::add_or_update_location(&client, &documents[0]).await?;
    } else {
        // All at once: one bad document registers none of them.
        ops::deploy_locations(&client, &documents).await?;
    }
    let owned: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    eprintln!("[load] waiting for {}", owned.join(", "));
    if !a.json {
        return wait_and_report(&client, &s, &owned).await;
    }
    // With --json, stdout carries the result document only.
    if !s.location_load_timeout.is_zero() || s.agent_heartbeat_timeout.is_some() {
        let opts = WaitOptions::new(
            s.location_load_timeout.max(Duration::from_millis(1)),
            s.agent_heartbeat_timeout,
        );
        let results = wait::wait_for_load(&client, &owned, &opts, &|l| eprintln!("{l}")).await?;
        wait::failures_to_error(&results)?;
        eprintln!("[load] {} loaded", owned.join(", "));
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({ "locations": built }))
            .unwrap_or_default()
    );
    Ok(0)
}

fn usage(message: impl Into<String>, hint: impl Into<String>) -> Error {
    Error::Usage {
        message: message.into(),
        hint: hint.into(),
    }
}

/// The locations the arguments name, with their folders.
fn targets(a: &PexDeployArgs) -> Result<Vec<Target>, Error> {
    let Some(name) = a.location_name.clone() else {
        return Err(usage(
            "no location name provided",
            "pass --location-name NAME (or '*' with --location-file for every location)",
        ));
    };
    let given = a.code.sources_given();
    if a.location_file.is_none() && given == 0 {
        return Err(usage(
            "no code source: nothing says where the definitions are",
            "pass --module-name, --package-name or --python-file (or --location-file)",
        ));
    }
    if given > 1 {
        return Err(usage(
            "more than one of --python-file, --package-name, --module-name and \
             --autoload-defs-module-name",
            "a location has exactly one code source; pass one of them",
        ));
    }
    let Some(file) = &a.location_file else {
        if name == "*" {
            return Err(usage(
                "--location-name '*' needs --location-file",
                "pass --location-file dagster_cloud.yaml to deploy every location in it",
            ));
        }
        check_dir(&a.source_directory, &name)?;
        return Ok(vec![Target {
            name,
            dir: a.source_directory.clone(),
            entry: None,
        }]);
    };
    let raw = document::read_yaml(file)?;
    if raw.get("locations").is_none() {
        // A one-location file: the positional folder holds the code.
        let (entry, name) = document::read_location_file(file, Some(&name))?;
        check_dir(&a.source_directory, &name)?;
        return Ok(vec![Target {
            name,
            dir: a.source_directory.clone(),
            entry: Some(entry),
        }]);
    }
    let ws = crate::config::load(file, &super::process_env)?;
    if name == "*" && given > 0 {
        return Err(usage(
            "--location-name '*' takes every location's settings from --location-file",
            "drop the code source flag, or name one location",
        ));
    }
    let picked: Vec<_> = ws
        .locations
        .iter()
        .filter(|l| name == "*" || l.name == name)
        .collect();
    if picked.is_empty() {
        return Err(usage(
            format!("location {name} is not in {}", file.display()),
            format!(
                "use one of: {}",
                ws.locations
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    picked
        .into_iter()
        .map(|l| {
            let build_dir = ws.root.join(&l.build_directory);
            let dir = project_dir(&build_dir, &l.entry);
            if dir != build_dir {
                eprintln!(
                    "{}: {} has no requirements.txt, pyproject.toml or setup.py; using {}, the \
                     folder of its code source",
                    l.name,
                    shown(&build_dir),
                    shown(&dir)
                );
            }
            check_dir(&dir, &l.name)?;
            Ok(Target {
                name: l.name.clone(),
                dir,
                entry: Some(l.entry.clone()),
            })
        })
        .collect()
}

fn shown(p: &Path) -> String {
    let s = p.display().to_string();
    if s.is_empty() { ".".into() } else { s }
}

fn has_project(dir: &Path) -> bool {
    PROJECT_FILES.iter().any(|f| dir.join(f).is_file())
}

/// The build directory, or, when it holds no project file (a monorepo whose Docker builds
/// start at the root), the folder of the code source's top-level package under it if that
/// one does: where `pip install` of the location would run.
pub(super) fn project_dir(build_dir: &Path, entry: &Map<String, Value>) -> PathBuf {
    if has_project(build_dir) {
        return build_dir.to_path_buf();
    }
    let source = entry.get("code_source").and_then(Value::as_object);
    let top = source.and_then(|cs| {
        ["package_name", "module_name", "autoload_defs_module_name"]
            .iter()
            .find_map(|k| cs.get(*k).and_then(Value::as_str))
            .map(|m| m.split('.').next().unwrap_or(m).to_string())
            .or_else(|| {
                cs.get("python_file")
                    .and_then(Value::as_str)
                    .and_then(|f| Path::new(f).components().next())
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
            })
    });
    match top {
        Some(t) if has_project(&build_dir.join(&t)) => build_dir.join(t),
        _ => build_dir.to_path_buf(),
    }
}

fn check_dir(dir: &Path, name: &str) -> Result<(), Error> {
    if !dir.is_dir() {
        return Err(usage(
            format!("location {name}: {} is not a folder", shown(dir)),
            "pass the location's folder as the argument (default: the current folder)",
        ));
    }
    if !has_project(dir) {
        return Err(pex::PexError::Input {
            message: format!(
                "location {name}: {} has no requirements.txt, pyproject.toml or setup.py, so its \
                 Python dependencies (dagster among them) are unknown",
                shown(dir)
            ),
            hint: "add a requirements.txt with at least `dagster` (and `dagster-cloud` for \
                   Dagster+ Serverless), or point at the location's folder"
                .into(),
        }
        .into());
    }
    Ok(())
}

/// `deploy --build-strategy python-executable`: the plan's locations to build or redeploy as
/// PEX files, registered in one `deployLocations` (only after every upload succeeded) with
/// the head commit, then waited for.
pub(super) fn deploy_plan(
    args: &crate::cli::DeployArgs,
    settings: &crate::api::Settings,
    plan: &crate::plan::Plan,
    runtime: &tokio::runtime::Runtime,
) -> Result<u8, Error> {
    use crate::plan::Action;
    let picked: Vec<_> = plan
        .locations
        .iter()
        .filter(|l| l.action != Action::Skip)
        .collect();
    if picked.is_empty() {
        eprintln!("Nothing to deploy: no location changed.");
        return Ok(0);
    }
    let ws = crate::config::load(&plan.repository.join(&plan.config), &super::process_env)?;
    let python_version = args
        .python_version
        .clone()
        .or_else(|| ws.settings.for_location(&picked[0].name).python_version)
        .unwrap_or_else(|| pex::platform::DEFAULT_PYTHON_VERSION.to_string());
    let locations: Vec<PexLocation> = picked
        .iter()
        .map(|l| {
            let build_dir = plan.repository.join(&l.build_directory);
            PexLocation {
                name: l.name.clone(),
                dir: project_dir(&build_dir, &l.entry),
            }
        })
        .collect();
    if args.dry_run {
        for l in &locations {
            println!("{}\tpython-executable\t{}", l.name, l.dir.display());
        }
        return Ok(0);
    }
    if !settings.has_remote() {
        return Err(usage(
            "--build-strategy python-executable needs a deployment API to upload to",
            "set DAGSTER_CLOUD_URL (or --url) and DAGSTER_CLOUD_API_TOKEN: Dagster+ or \
             `dagster-deploy serve`",
        ));
    }
    let target = crate::api::Target::from_settings(
        settings,
        &plan.repository,
        crate::api::ClientOptions::default(),
        None,
    )?;
    let crate::api::Target::Remote { client, .. } = &target else {
        return Err(usage(
            "--build-strategy python-executable needs a remote deployment API",
            "set DAGSTER_CLOUD_URL and DAGSTER_CLOUD_API_TOKEN",
        ));
    };
    let opts = Options {
        python_version,
        deps_cache_from: None,
        deps_cache_to: None,
        build_method: BuildMethod::Local,
    };
    let say = |m: &str| eprintln!("{m}");
    runtime.block_on(async {
        let built = pex::build_and_upload(client, &locations, &opts, &say).await?;
        let documents: Vec<Value> = picked
            .iter()
            .zip(&built)
            .map(|(l, b)| {
                let flags = DocumentFlags {
                    git: GitMetadata {
                        commit_hash: Some(plan.head.commit.clone()),
                        ..Default::default()
                    },
                    pex_tag: Some(b.pex_tag.clone()),
                    python_version: Some(b.python_version.clone()),
                    ..Default::default()
                };
                document::location_document(&l.name, Some(&l.entry), &flags)
            })
            .collect();
        let names: Vec<String> = built.iter().map(|b| b.location.clone()).collect();
        eprintln!("[register] {}", names.join(", "));
        ops::deploy_locations(client, &documents).await?;
        if !settings.location_load_timeout.is_zero() {
            let wait_opts = WaitOptions::new(
                settings.location_load_timeout,
                settings.agent_heartbeat_timeout,
            );
            let results =
                wait::wait_for_load(client, &names, &wait_opts, &|l| eprintln!("{l}")).await?;
            wait::failures_to_error(&results)?;
            eprintln!("[load] {} loaded", names.join(", "));
        }
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "locations": built }))
                    .unwrap_or_default()
            );
        } else {
            for b in &built {
                let deps = if b.deps_built {
                    "uploaded"
                } else {
                    "on the server"
                };
                println!("{}\t{}\tdeps {deps}", b.location, b.pex_tag);
            }
        }
        Ok(0)
    })
}
