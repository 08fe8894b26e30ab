//! Where locations are registered, behind one trait: a deployment API (Dagster+ or
//! `dagster-deploy serve`) through the client, or the local store at the repository root
//! (`.dagster-deploy/`), driven through the same `server::Deployments` the server uses.
//! Every command that reads or writes a deployment goes through [`Deployment`], so each works
//! on both (docs/architecture.md, "the deploy layer").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::wait::WaitPolicy;
use crate::api::ops::{self, HistoryEntry};
use crate::api::wait::LoadResult;
use crate::api::{ApiError, Client, LoadFailure, Settings, document};
use crate::error::Error;
use crate::server::{
    self, Actor, DATABASE_FILE, DEFAULT_DEPLOYMENT, DeployError, Deployments, HistoryPage,
    ImageCheck, RegistryAccess, Revision, RevisionAction,
};

/// The local store's folder at the repository root.
pub const LOCAL_STORE_DIR: &str = ".dagster-deploy";
/// Held while a local registration reads, checks and writes.
const LOCAL_LOCK_FILE: &str = "register.lock";

/// Every current location document, by location name.
pub type Documents = BTreeMap<String, Value>;

/// Picks, from the current documents, the `(name, document)` pairs to send.
pub type Choose<'a> = &'a mut (dyn FnMut(&Documents) -> Result<Vec<(String, Value)>, Error> + Send);

/// People's progress lines.
pub type Progress<'a> = &'a (dyn Fn(&str) + Sync);

/// One location as `deployment list-locations` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedLocation {
    pub name: String,
    pub python_file: Option<String>,
    pub package_name: Option<String>,
    pub image: Option<String>,
}

/// A deployment: what it runs, registering new documents, waiting for them to load, and each
/// location's history.
pub trait Deployment: Send + Sync {
    /// The deployment's name (`prod`, a branch deployment, ...).
    fn name(&self) -> &str;
    /// For people: where registrations go.
    fn describe(&self) -> String;
    /// Every current location document.
    fn current_documents(&self) -> BoxFuture<'_, Result<Documents, Error>>;
    /// Reads the current documents, lets `choose` decide what to send, and sends it in one
    /// `deployLocations` (nothing when `choose` picks nothing); returns what was sent. The
    /// local store does all of it under one file lock. The protocol offers no
    /// compare-and-swap, so remotely the read is right before the write, and two deploys
    /// racing within that window (one request apart) can still let the older one land last.
    fn deploy_locations<'a>(
        &'a self,
        choose: Choose<'a>,
    ) -> BoxFuture<'a, Result<Vec<(String, Value)>, Error>>;
    /// Waits for the `sent` documents to load, as `policy` says.
    fn wait<'a>(
        &'a self,
        sent: &'a [(String, Value)],
        policy: &'a WaitPolicy,
        progress: Progress<'a>,
    ) -> BoxFuture<'a, Result<Vec<(String, LoadResult)>, Error>>;
    /// The locations it holds, for listing.
    fn list_locations(&self) -> BoxFuture<'_, Result<Vec<ListedLocation>, Error>>;
    /// The newest `limit` revisions of `location` with an id below `before`, oldest first.
    fn history<'a>(
        &'a self,
        location: &'a str,
        limit: usize,
        before: Option<i64>,
    ) -> BoxFuture<'a, Result<Vec<HistoryEntry>, Error>>;
    /// Registers an earlier document of `location` again (`to`: that revision; `None`: the
    /// latest different one); returns the new revision and its document.
    fn rollback<'a>(
        &'a self,
        location: &'a str,
        to: Option<i64>,
    ) -> BoxFuture<'a, Result<(i64, Value), Error>>;
}

/// A deployment API (Dagster+ or `dagster-deploy serve`) through the client.
pub struct Remote {
    pub client: Client,
}

impl Remote {
    /// The deployment `deploy` and the `ci` commands use: the organisation URL +
    /// `/{deployment}` (`prod` when none is set).
    pub fn from_settings(settings: &Settings, what: &str) -> Result<Remote, Error> {
        let deployment = settings.deployment.as_deref().unwrap_or(DEFAULT_DEPLOYMENT);
        Ok(Remote {
            client: settings.client_for(None, deployment, what)?,
        })
    }
}

impl Deployment for Remote {
    fn name(&self) -> &str {
        self.client.deployment().unwrap_or(DEFAULT_DEPLOYMENT)
    }

    fn describe(&self) -> String {
        self.client.base_url().to_string()
    }

    fn current_documents(&self) -> BoxFuture<'_, Result<Documents, Error>> {
        Box::pin(async move { Ok(ops::current_documents(&self.client).await?) })
    }

    fn deploy_locations<'a>(
        &'a self,
        choose: Choose<'a>,
    ) -> BoxFuture<'a, Result<Vec<(String, Value)>, Error>> {
        Box::pin(async move {
            let current = ops::current_documents(&self.client).await?;
            let send = choose(&current)?;
            if !send.is_empty() {
                let docs: Vec<Value> = send.iter().map(|(_, d)| d.clone()).collect();
                ops::deploy_locations(&self.client, &docs).await?;
            }
            Ok(send)
        })
    }

    fn wait<'a>(
        &'a self,
        sent: &'a [(String, Value)],
        policy: &'a WaitPolicy,
        progress: Progress<'a>,
    ) -> BoxFuture<'a, Result<Vec<(String, LoadResult)>, Error>> {
        Box::pin(async move { Ok(policy.wait(&self.client, sent, progress).await?) })
    }

    fn list_locations(&self) -> BoxFuture<'_, Result<Vec<ListedLocation>, Error>> {
        Box::pin(async move {
            let field = |m: &Value, key: &str| {
                m[key]
                    .as_str()
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            };
            Ok(ops::workspace_entries(&self.client)
                .await?
                .into_iter()
                .map(|e| ListedLocation {
                    python_file: field(&e.metadata, "python_file"),
                    package_name: field(&e.metadata, "package_name"),
                    image: field(&e.metadata, "image"),
                    name: e.location_name,
                })
                .collect())
        })
    }

    fn history<'a>(
        &'a self,
        location: &'a str,
        limit: usize,
        before: Option<i64>,
    ) -> BoxFuture<'a, Result<Vec<HistoryEntry>, Error>> {
        Box::pin(
            async move { Ok(ops::location_history(&self.client, location, limit, before).await?) },
        )
    }

    fn rollback<'a>(
        &'a self,
        location: &'a str,
        to: Option<i64>,
    ) -> BoxFuture<'a, Result<(i64, Value), Error>> {
        Box::pin(async move { Ok(ops::rollback_location(&self.client, location, to).await?) })
    }
}

/// The local store in `<repo>/.dagster-deploy/`: where `deploy` registers when no Dagster+
/// setting names a deployment API.
pub struct LocalStore {
    dir: PathBuf,
    deployments: Deployments,
    deployment: String,
    /// How to check that images exist; `None`: every location loads at once.
    registry: Option<RegistryAccess>,
}

impl LocalStore {
    /// The store in `repo_root/.dagster-deploy`, created on first use with `deployment` in it:
    /// where `deploy` registers.
    pub fn create(
        repo_root: &Path,
        deployment: &str,
        registry: Option<RegistryAccess>,
    ) -> Result<LocalStore, Error> {
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
        Ok(LocalStore {
            dir,
            deployments,
            deployment: deployment.to_string(),
            registry,
        })
    }

    /// The store only if it exists, changing nothing: for reading (planning, dry runs,
    /// listing, history) and rollbacks, where a mistyped deployment must be an error, not
    /// created.
    pub fn existing(repo_root: &Path, deployment: &str) -> Result<Option<LocalStore>, Error> {
        let dir = repo_root.join(LOCAL_STORE_DIR);
        if !dir.join(DATABASE_FILE).exists() {
            return Ok(None);
        }
        Ok(Some(LocalStore {
            deployments: Deployments::open(&dir)?,
            dir,
            deployment: deployment.to_string(),
            registry: None,
        }))
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A deployment the store does not hold has no locations (yet).
    fn documents(&self) -> Result<Documents, Error> {
        match self.deployments.locations(&self.deployment) {
            Ok(locations) => Ok(locations
                .into_iter()
                .map(|l| (l.name, l.document))
                .collect()),
            Err(DeployError::UnknownDeployment { .. }) => Ok(BTreeMap::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Read, choose and write under the store's lock file.
    fn deploy_locked(&self, choose: Choose<'_>) -> Result<Vec<(String, Value)>, Error> {
        let lock_path = self.dir.join(LOCAL_LOCK_FILE);
        let unwritable = |e: std::io::Error, what: &str| ApiError::InvalidInput {
            message: format!("cannot {what} {}: {e}", lock_path.display()),
            hint: format!("make {} writable", self.dir.display()),
        };
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| unwritable(e, "open"))?;
        lock.lock().map_err(|e| unwritable(e, "lock"))?;
        let send = choose(&self.documents()?)?;
        if !send.is_empty() {
            let docs: Vec<&Value> = send.iter().map(|(_, d)| d).collect();
            self.deployments.deploy_locations(
                &self.deployment,
                &json!({ "locations": docs }),
                &Actor::local("dagster-deploy deploy"),
            )?;
        }
        drop(lock);
        Ok(send)
    }
}

impl Deployment for LocalStore {
    fn name(&self) -> &str {
        &self.deployment
    }

    fn describe(&self) -> String {
        format!(
            "local store {} (deployment {})",
            self.dir.display(),
            self.deployment
        )
    }

    fn current_documents(&self) -> BoxFuture<'_, Result<Documents, Error>> {
        Box::pin(async move { self.documents() })
    }

    fn deploy_locations<'a>(
        &'a self,
        choose: Choose<'a>,
    ) -> BoxFuture<'a, Result<Vec<(String, Value)>, Error>> {
        Box::pin(async move { self.deploy_locked(choose) })
    }

    /// The store has no agent: a location "loads" when its image exists (checked only when
    /// the store was given registry access).
    fn wait<'a>(
        &'a self,
        sent: &'a [(String, Value)],
        _policy: &'a WaitPolicy,
        _progress: Progress<'a>,
    ) -> BoxFuture<'a, Result<Vec<(String, LoadResult)>, Error>> {
        Box::pin(async move {
            let mut results = Vec::new();
            for (name, doc) in sent {
                let result = match (&self.registry, document::image(doc)) {
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
        })
    }

    fn list_locations(&self) -> BoxFuture<'_, Result<Vec<ListedLocation>, Error>> {
        Box::pin(async move {
            let text = |d: &Value, pointer: &str| {
                d.pointer(pointer)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            Ok(self
                .documents()?
                .into_iter()
                .map(|(name, d)| ListedLocation {
                    python_file: text(&d, "/code_source/python_file"),
                    package_name: text(&d, "/code_source/package_name"),
                    image: text(&d, "/image"),
                    name,
                })
                .collect())
        })
    }

    fn history<'a>(
        &'a self,
        location: &'a str,
        limit: usize,
        before: Option<i64>,
    ) -> BoxFuture<'a, Result<Vec<HistoryEntry>, Error>> {
        Box::pin(async move {
            let page = HistoryPage {
                before,
                limit: Some(limit),
            };
            Ok(self
                .deployments
                .history(&self.deployment, location, page)?
                .into_iter()
                .map(history_entry)
                .collect())
        })
    }

    fn rollback<'a>(
        &'a self,
        location: &'a str,
        to: Option<i64>,
    ) -> BoxFuture<'a, Result<(i64, Value), Error>> {
        Box::pin(async move {
            let r = self.deployments.rollback(
                &self.deployment,
                location,
                to,
                &Actor::local("dagster-deploy rollback"),
            )?;
            Ok((r.id, r.document.unwrap_or(Value::Null)))
        })
    }
}

/// A stored revision as the `locationHistory` extension reports it.
fn history_entry(r: Revision) -> HistoryEntry {
    let (kind, rolled_back_from) = match r.action {
        RevisionAction::Registered => ("REGISTERED", None),
        RevisionAction::Deleted => ("DELETED", None),
        RevisionAction::RolledBack { from_revision } => ("ROLLED_BACK", Some(from_revision)),
    };
    HistoryEntry {
        id: r.id,
        kind: kind.into(),
        rolled_back_from,
        document: r.document,
        actor: r.actor,
        commit_hash: r.commit_hash,
        timestamp: r.created_at_ms as f64 / 1000.0,
    }
}

/// The deployment the settings name, for reading: the API when any Dagster+ setting is
/// present (its `deployment *` URL when `deployment_url`, else the organisation URL +
/// `/{deployment}`), else the repository's local store if it exists (`None`: nothing was
/// deployed from here, and reading creates nothing).
pub fn existing(
    settings: &Settings,
    repo_root: &Path,
    deployment_url: bool,
    what: &str,
) -> Result<Option<Box<dyn Deployment>>, Error> {
    if settings.has_remote() {
        let remote = match deployment_url {
            true => Remote {
                client: settings.deployment_client(what)?,
            },
            false => Remote::from_settings(settings, what)?,
        };
        return Ok(Some(Box::new(remote)));
    }
    let deployment = settings.deployment.as_deref().unwrap_or(DEFAULT_DEPLOYMENT);
    Ok(LocalStore::existing(repo_root, deployment)?.map(|s| Box::new(s) as Box<dyn Deployment>))
}

/// As [`existing`], but a missing local store is an error saying what to do: for commands
/// that only read or roll back (`history`, `rollback`, `deployment list-locations`), run
/// from the repository (`cwd`).
pub fn existing_or_explain(
    settings: &Settings,
    cwd: &Path,
    what: &str,
) -> Result<Box<dyn Deployment>, Error> {
    let repo_root = match settings.has_remote() {
        true => cwd.to_path_buf(),
        false => crate::changes::Repo::discover(cwd)?.workdir,
    };
    existing(settings, &repo_root, true, what)?.ok_or_else(|| Error::Usage {
        message: format!(
            "no deployment settings and no local store in {}: nothing was deployed from here",
            repo_root.join(LOCAL_STORE_DIR).display()
        ),
        hint: "run `dagster-deploy deploy` first, or pass --url/--organization and --api-token"
            .into(),
    })
}
