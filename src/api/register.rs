//! `deploy`'s last step: register every location the plan builds or redeploys with ONE
//! `deployLocations`, wait for them to load, and report per location.
//!
//! The target is Dagster+ (or `dagster-deploy serve`) through the client, or — with no Dagster+
//! settings at all — the local store in `<repo>/.dagster-deploy/`, driven through the same
//! `server::Deployments` API the server uses.
//!
//! A location never moves backwards: when its deployed `git.commit_hash` descends from the
//! commit being deployed (another pipeline got there first), it is skipped unless `force`.
//! For the local store, reading, checking and writing happen under one file lock, so two
//! concurrent deploys cannot interleave. The protocol offers no compare-and-swap, so against a
//! remote API the check runs right before the write, and two deploys racing within that
//! window (one request apart) can still let the older one land last.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::client::{Client, ClientOptions};
use super::document::{self, DocumentFlags, GitMetadata};
use super::error::{ApiError, LoadFailure};
use super::ops;
use super::settings::{
    DEFAULT_HYBRID_HEARTBEAT_TIMEOUT, DEFAULT_SERVERLESS_HEARTBEAT_TIMEOUT, Settings,
};
use super::wait::{LoadResult, WaitOptions, wait_for_load};
use crate::changes::Repo;
use crate::plan::{Action, Deployed, Plan};
use crate::server::{
    self, Actor, DATABASE_FILE, DEFAULT_DEPLOYMENT, DeployError, Deployments, ImageCheck,
    RegistryAccess,
};

/// The local store's folder at the repository root.
pub const LOCAL_STORE_DIR: &str = ".dagster-deploy";
/// Held while a local registration reads, checks and writes.
const LOCAL_LOCK_FILE: &str = "register.lock";

/// Where locations are registered.
pub enum Target {
    Remote {
        client: Client,
        load_timeout: Duration,
        /// `None`: 120 s, or 900 s for a Serverless deployment (as `ci deploy` decides).
        heartbeat_timeout: Option<Duration>,
    },
    Local {
        dir: PathBuf,
        deployments: Deployments,
        deployment: String,
        /// How to check images exist; `None`: every location loads at once.
        registry: Option<RegistryAccess>,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Target {
    /// The remote API when any Dagster+ setting is present, else the local store at
    /// `repo_root/.dagster-deploy` (created on first use). The remote URL is the organisation
    /// URL + `/{deployment}` (deployment `prod` when none is set), as `ci deploy` builds it.
    pub fn from_settings(
        settings: &Settings,
        repo_root: &Path,
        client_options: ClientOptions,
        registry: Option<RegistryAccess>,
    ) -> Result<Target, ApiError> {
        let deployment = settings
            .deployment
            .clone()
            .unwrap_or_else(|| DEFAULT_DEPLOYMENT.to_string());
        if !settings.has_remote() {
            return Target::local(repo_root, &deployment, registry);
        }
        let what = "registering locations";
        let url = format!("{}/{deployment}", settings.organization_url(what)?);
        let client = Client::new(
            &url,
            settings.token(what)?.clone(),
            Some(&deployment),
            client_options,
        )?;
        Ok(Target::remote(client, settings))
    }

    /// The remote API through `client`, with the settings' load and heartbeat timeouts.
    pub fn remote(client: Client, settings: &Settings) -> Target {
        Target::Remote {
            client,
            load_timeout: settings.location_load_timeout,
            heartbeat_timeout: settings.agent_heartbeat_timeout,
        }
    }

    /// The local store in `repo_root/.dagster-deploy`, created on first use with `deployment`
    /// in it: where `deploy` registers.
    pub fn local(
        repo_root: &Path,
        deployment: &str,
        registry: Option<RegistryAccess>,
    ) -> Result<Target, ApiError> {
        let dir = repo_root.join(LOCAL_STORE_DIR);
        let deployments = Deployments::open(&dir)?;
        // git must not see the store: it would count as an uncommitted change to plan.
        let ignore = dir.join(".gitignore");
        if !ignore.exists() {
            std::fs::write(&ignore, "# dagster-deploy's local deployment store\n*\n").map_err(
                |e| ApiError::InvalidInput {
                    message: format!("cannot write {}: {e}", ignore.display()),
                    hint: format!("make {} writable", dir.display()),
                },
            )?;
        }
        deployments.ensure_deployment(deployment)?;
        Ok(Target::Local {
            dir,
            deployments,
            deployment: deployment.to_string(),
            registry,
        })
    }

    /// The local store only if it exists, changing nothing: for reading (planning, dry runs,
    /// history) and rollbacks, where a mistyped deployment must be an error, not created.
    pub fn existing_local(repo_root: &Path, deployment: &str) -> Result<Option<Target>, ApiError> {
        let dir = repo_root.join(LOCAL_STORE_DIR);
        if !dir.join(DATABASE_FILE).exists() {
            return Ok(None);
        }
        Ok(Some(Target::Local {
            deployments: Deployments::open(&dir)?,
            dir,
            deployment: deployment.to_string(),
            registry: None,
        }))
    }

    pub fn deployment(&self) -> &str {
        match self {
            Target::Remote { client, .. } => client.deployment().unwrap_or(DEFAULT_DEPLOYMENT),
            Target::Local { deployment, .. } => deployment,
        }
    }

    /// For people: where registrations go.
    pub fn describe(&self) -> String {
        match self {
            Target::Remote { client, .. } => client.base_url().to_string(),
            Target::Local {
                dir, deployment, ..
            } => format!("local store {} (deployment {deployment})", dir.display()),
        }
    }

    /// Every current location document, by name.
    pub async fn current_documents(&self) -> Result<BTreeMap<String, Value>, ApiError> {
        match self {
            Target::Remote { client, .. } => ops::current_documents(client).await,
            Target::Local {
                deployments,
                deployment,
                ..
            } => local_documents(deployments, deployment),
        }
    }
}

/// A deployment the store does not hold has no locations (yet).
fn local_documents(
    deployments: &Deployments,
    deployment: &str,
) -> Result<BTreeMap<String, Value>, ApiError> {
    match deployments.locations(deployment) {
        Ok(locations) => Ok(locations
            .into_iter()
            .map(|l| (l.name, l.document))
            .collect()),
        Err(DeployError::UnknownDeployment { .. }) => Ok(BTreeMap::new()),
        Err(e) => Err(e.into()),
    }
}

/// Every deployed location with the `git.commit_hash` its document records, if any: what
/// `plan::plan_with_bases` plans against.
pub async fn deployed_locations(target: &Target) -> Result<Deployed, ApiError> {
    Ok(target
        .current_documents()
        .await?
        .iter()
        .map(|(name, doc)| (name.clone(), document::commit_hash(doc).map(str::to_string)))
        .collect())
}

#[derive(Debug, Clone, Default)]
pub struct RegisterOptions {
    /// Register even when the deployed commit is newer.
    pub force: bool,
    /// `git` facts for every document; `commit_hash` defaults to the plan's head commit.
    pub git: GitMetadata,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegisterStatus {
    /// Registered and loaded.
    Loaded,
    /// Registered, but the agent reported a load error.
    LoadFailed,
    /// Not registered: the deployed commit descends from the one being deployed.
    SkippedBackwards,
    /// Not registered: no image for it (its build failed, or nothing to redeploy).
    NotRegistered,
}

#[derive(Debug, Clone, Serialize)]
pub struct LocationReport {
    pub location: String,
    pub action: Action,
    pub status: RegisterStatus,
    pub image: Option<String>,
    /// The commit deployed before this run, if any.
    pub previous_commit: Option<String>,
    /// For people: what happened and why.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_error: Option<LoadFailure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegisterReport {
    pub target: String,
    pub deployment: String,
    pub commit: String,
    pub locations: Vec<LocationReport>,
}

impl RegisterReport {
    /// True when nothing failed to load and nothing lacked an image (skips are fine).
    pub fn succeeded(&self) -> bool {
        self.locations.iter().all(|l| {
            matches!(
                l.status,
                RegisterStatus::Loaded | RegisterStatus::SkippedBackwards
            )
        })
    }

    pub fn registered(&self) -> Vec<&str> {
        self.locations
            .iter()
            .filter(|l| {
                matches!(
                    l.status,
                    RegisterStatus::Loaded | RegisterStatus::LoadFailed
                )
            })
            .map(|l| l.location.as_str())
            .collect()
    }
}

/// What will be sent, and what was decided for the others.
struct Decision {
    /// `(name, document)` to register.
    send: Vec<(String, Value)>,
    reports: Vec<LocationReport>,
}

/// Registers the plan's `build` locations (with the image in `images`; a location without
/// one is not registered: its build failed) and `redeploy` locations (with the image
/// currently deployed) in one `deployLocations`, waits for them to load and reports.
pub async fn register(
    plan: &Plan,
    images: &BTreeMap<String, String>,
    target: &Target,
    options: &RegisterOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<RegisterReport, ApiError> {
    let mut decision = match target {
        Target::Remote { client, .. } => {
            let current = ops::current_documents(client).await?;
            let decision = decide(plan, images, &current, options)?;
            if !decision.send.is_empty() {
                let docs: Vec<Value> = decision.send.iter().map(|(_, d)| d.clone()).collect();
                ops::deploy_locations(client, &docs).await?;
            }
            decision
        }
        Target::Local {
            dir,
            deployments,
            deployment,
            ..
        } => {
            let (dir, deployments, deployment) =
                (dir.clone(), deployments.clone(), deployment.clone());
            let (plan, images, options) = (plan.clone(), images.clone(), options.clone());
            tokio::task::spawn_blocking(move || {
                register_local(&dir, &deployments, &deployment, &plan, &images, &options)
            })
            .await
            .map_err(|e| ApiError::Unexpected {
                operation: "local registration".into(),
                detail: e.to_string(),
            })??
        }
    };
    let names: Vec<String> = decision.send.iter().map(|(n, _)| n.clone()).collect();
    if !names.is_empty() {
        progress(&format!(
            "Registered {} in {}; waiting for {} to load...",
            names.join(", "),
            target.describe(),
            if names.len() == 1 { "it" } else { "them" }
        ));
    }
    let results = load_results(target, &decision.send, progress).await?;
    for (name, result) in results {
        if let Some(r) = decision.reports.iter_mut().find(|r| r.location == name) {
            match result {
                LoadResult::Loaded => {
                    r.status = RegisterStatus::Loaded;
                    r.message = "registered and loaded".into();
                }
                LoadResult::Failed(f) => {
                    r.status = RegisterStatus::LoadFailed;
                    r.message = format!("registered, but failed to load: {}", f.message);
                    r.load_error = Some(f);
                }
            }
        }
    }
    Ok(RegisterReport {
        target: target.describe(),
        deployment: target.deployment().to_string(),
        commit: plan.head.commit.clone(),
        locations: decision.reports,
    })
}

/// Read, check and write under the store's lock file.
fn register_local(
    dir: &Path,
    deployments: &Deployments,
    deployment: &str,
    plan: &Plan,
    images: &BTreeMap<String, String>,
    options: &RegisterOptions,
) -> Result<Decision, ApiError> {
    let lock_path = dir.join(LOCAL_LOCK_FILE);
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| ApiError::InvalidInput {
            message: format!("cannot open {}: {e}", lock_path.display()),
            hint: format!("make {} writable", dir.display()),
        })?;
    lock.lock().map_err(|e| ApiError::InvalidInput {
        message: format!("cannot lock {}: {e}", lock_path.display()),
        hint: format!("make {} writable", dir.display()),
    })?;
    let current = local_documents(deployments, deployment)?;
    let decision = decide(plan, images, &current, options)?;
    if !decision.send.is_empty() {
        let docs: Vec<Value> = decision.send.iter().map(|(_, d)| d.clone()).collect();
        deployments.deploy_locations(
            deployment,
            &json!({ "locations": docs }),
            &Actor::local("dagster-deploy deploy"),
        )?;
    }
    drop(lock);
    Ok(decision)
}

fn decide(
    plan: &Plan,
    images: &BTreeMap<String, String>,
    current: &BTreeMap<String, Value>,
    options: &RegisterOptions,
) -> Result<Decision, ApiError> {
    let head = plan.head.commit.as_str();
    let mut git = options.git.clone();
    let commit = git
        .commit_hash
        .get_or_insert_with(|| head.to_string())
        .clone();
    let mut repo: Option<Repo> = None;
    let mut send = Vec::new();
    let mut reports = Vec::new();
    for loc in &plan.locations {
        if loc.action == Action::Skip {
            continue;
        }
        let deployed = current.get(&loc.name);
        let previous_commit = deployed.and_then(document::commit_hash).map(str::to_string);
        let mut report = LocationReport {
            location: loc.name.clone(),
            action: loc.action,
            status: RegisterStatus::NotRegistered,
            image: None,
            previous_commit: previous_commit.clone(),
            message: String::new(),
            load_error: None,
        };
        let image = match loc.action {
            Action::Build => images.get(&loc.name).cloned(),
            _ => deployed
                .and_then(document::image)
                .or_else(|| loc.entry.get("image").and_then(Value::as_str))
                .map(str::to_string),
        };
        let Some(image) = image else {
            report.message = match loc.action {
                Action::Build => "not registered: no image was built for it".into(),
                _ => "not registered: it is not deployed yet, so there is no image to keep; \
                      build it (`--location NAME`)"
                    .into(),
            };
            reports.push(report);
            continue;
        };
        report.image = Some(image.clone());
        if let Some(prev) = &previous_commit
            && !options.force
            && prev != &commit
        {
            if repo.is_none() {
                repo = Some(Repo::discover(&plan.repository).map_err(|e| ApiError::Git {
                    message: format!("cannot open the repository to compare commits: {e}"),
                })?);
            }
            if let Some(repo) = &repo
                && descends_from(repo, prev, &commit)?
            {
                report.status = RegisterStatus::SkippedBackwards;
                report.message = format!(
                    "skipped: the deployed commit {} is newer than {} (another pipeline got \
                     there first); pass --force to deploy the older commit anyway",
                    short(prev),
                    short(&commit)
                );
                reports.push(report);
                continue;
            }
        }
        let flags = DocumentFlags {
            image: Some(image),
            git: git.clone(),
            ..Default::default()
        };
        send.push((
            loc.name.clone(),
            document::location_document(&loc.name, Some(&loc.entry), &flags),
        ));
        report.message = "registered".into();
        reports.push(report);
    }
    Ok(Decision { send, reports })
}

/// Whether `deployed` is a strict descendant of `ours`. A commit this clone does not have
/// (shallow clone, other repository) cannot be compared: not a descendant.
fn descends_from(repo: &Repo, deployed: &str, ours: &str) -> Result<bool, ApiError> {
    let (Ok(d), Ok(o)) = (git2::Oid::from_str(deployed), git2::Oid::from_str(ours)) else {
        return Ok(false);
    };
    if !repo.has_commit(d) || !repo.has_commit(o) {
        return Ok(false);
    }
    repo.repo
        .graph_descendant_of(d, o)
        .map_err(|e| ApiError::Git {
            message: format!("cannot compare commits {deployed} and {ours}: {e}"),
        })
}

async fn load_results(
    target: &Target,
    sent: &[(String, Value)],
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Vec<(String, LoadResult)>, ApiError> {
    let names: Vec<String> = sent.iter().map(|(n, _)| n.clone()).collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    match target {
        Target::Remote {
            client,
            load_timeout,
            heartbeat_timeout,
        } => {
            let heartbeat = match heartbeat_timeout {
                Some(t) => *t,
                None => heartbeat_default(client, sent).await?,
            };
            let opts = WaitOptions::new(*load_timeout, Some(heartbeat));
            wait_for_load(client, &names, &opts, progress).await
        }
        Target::Local { registry, .. } => {
            let mut results = Vec::new();
            for (name, doc) in sent {
                let result = match (registry, document::image(doc)) {
                    (Some(access), Some(image)) => match server::check_image(access, image).await {
                        ImageCheck::Present => LoadResult::Loaded,
                        ImageCheck::Missing(why) => LoadResult::Failed(LoadFailure {
                            location: name.clone(),
                            message: why,
                            stack: String::new(),
                            chain: Vec::new(),
                        }),
                    },
                    _ => LoadResult::Loaded,
                };
                results.push((name.clone(), result));
            }
            Ok(results)
        }
    }
}

/// `ci deploy`'s rule: 900 s for a Serverless deployment (unless a location names an agent
/// queue), else 120 s.
pub async fn heartbeat_default(
    client: &Client,
    sent: &[(String, Value)],
) -> Result<Duration, ApiError> {
    let queued = sent.iter().any(|(_, d)| d.get("agent_queue").is_some());
    if !queued && ops::agent_type(client).await? == "SERVERLESS" {
        Ok(DEFAULT_SERVERLESS_HEARTBEAT_TIMEOUT)
    } else {
        Ok(DEFAULT_HYBRID_HEARTBEAT_TIMEOUT)
    }
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}
