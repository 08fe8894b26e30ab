//! The deployment operations as plain Rust functions over a `Store`. The GraphQL layer calls
//! these, and so can the CLI directly (the local store in `.dagster-deploy/` when no Dagster+
//! is configured): one mechanism, two front doors. Authorisation is the caller's job; these
//! functions only record who (`Actor`) made each change.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::document;
use super::error::{DeployError, ServerError};
use super::private_fs;
use super::store::{
    ApplyError, ApplyMode, BranchDeployment, DeploymentRecord, HistoryPage, LocationChange,
    MAX_DEPLOYMENT_BYTES, Revision, RevisionAction, SqliteStore, Store, StoredLocation,
};
use super::tokens::{self, Actor, TokenInfo, TokenScope};

/// The deployment every organisation starts with, and the default target of requests that
/// name none.
pub const DEFAULT_DEPLOYMENT: &str = "prod";
/// The SQLite database inside a data directory.
pub const DATABASE_FILE: &str = "deployments.sqlite3";

/// A token's use is written at most this often (a write per request would make every
/// request wait on the write lock).
const TOKEN_USE_INTERVAL_MS: i64 = 60_000;

#[derive(Clone)]
pub struct Deployments {
    store: Arc<dyn Store>,
    /// When each token's use was last written, by token id.
    token_use: Arc<Mutex<HashMap<i64, i64>>>,
}

impl std::fmt::Debug for Deployments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployments").finish_non_exhaustive()
    }
}

impl Deployments {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Deployments {
            store,
            token_use: Arc::default(),
        }
    }

    /// Opens the SQLite store in `data_dir`, creating the folder, the database and the `prod`
    /// deployment on first use. Needs no running server and takes no lock (SQLite itself
    /// serialises writers), so the CLI can use it while a server runs on the same folder.
    pub fn open(data_dir: &Path) -> Result<Self, ServerError> {
        private_fs::dir(data_dir).map_err(|source| ServerError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let store = SqliteStore::open(&data_dir.join(DATABASE_FILE))?;
        let deployments = Deployments::new(Arc::new(store));
        if deployments.store.deployments()?.is_empty() {
            deployments.store.create_deployment(DEFAULT_DEPLOYMENT)?;
        }
        Ok(deployments)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    // ---- deployments -------------------------------------------------------------------

    pub fn deployment(&self, name: &str) -> Result<DeploymentRecord, DeployError> {
        match self.store.deployment(name)? {
            Some(d) => Ok(d),
            None => Err(DeployError::UnknownDeployment {
                name: name.to_string(),
                existing: self
                    .store
                    .deployments()?
                    .into_iter()
                    .map(|d| d.name)
                    .collect(),
            }),
        }
    }

    pub fn deployment_by_id(&self, id: i64) -> Result<DeploymentRecord, DeployError> {
        self.store
            .deployment_by_id(id)?
            .ok_or(DeployError::UnknownDeploymentId(id))
    }

    pub fn deployments(&self) -> Result<Vec<DeploymentRecord>, DeployError> {
        Ok(self.store.deployments()?)
    }

    /// Creates a full deployment; fails if the name is taken or not a valid name.
    pub fn create_deployment(&self, name: &str) -> Result<DeploymentRecord, DeployError> {
        check_deployment_name(name)?;
        self.store
            .create_deployment(name)?
            .ok_or_else(|| DeployError::DeploymentExists(name.to_string()))
    }

    /// The deployment, created as a full deployment if it does not exist yet.
    pub fn ensure_deployment(&self, name: &str) -> Result<DeploymentRecord, DeployError> {
        check_deployment_name(name)?;
        if let Some(d) = self.store.deployment(name)? {
            return Ok(d);
        }
        self.store.create_deployment(name)?;
        self.deployment(name)
    }

    /// Deletes a deployment with its locations and history, revoking tokens scoped to it.
    pub fn delete_deployment(&self, id: i64) -> Result<DeploymentRecord, DeployError> {
        self.store
            .delete_deployment(id)?
            .ok_or(DeployError::UnknownDeploymentId(id))
    }

    /// Creates the branch deployment of `(repo_name, branch_name)` or updates its pull request
    /// and commit facts; its name is derived from the branch name.
    pub fn create_or_update_branch_deployment(
        &self,
        mut branch: BranchDeployment,
    ) -> Result<DeploymentRecord, DeployError> {
        if branch.repo_name.trim().is_empty() || branch.branch_name.trim().is_empty() {
            return Err(DeployError::BadRequest(
                "a branch deployment needs a repository name and a branch name".into(),
            ));
        }
        if let Some(base) = &branch.base_deployment_name {
            self.deployment(base)?;
        }
        branch.pull_request_status = branch
            .pull_request_status
            .map(|s| s.trim().to_ascii_uppercase());
        let slug = branch_slug(&branch.branch_name);
        let candidates: Vec<String> = std::iter::once(slug.clone())
            .chain((2..=100).map(|i| format!("{slug}-{i}")))
            .collect();
        Ok(self.store.upsert_branch_deployment(&branch, &candidates)?)
    }

    pub fn branch_deployment_name(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Option<String>, DeployError> {
        Ok(self.store.branch_deployment_name(repo, branch)?)
    }

    pub fn set_deployment_settings(
        &self,
        deployment: &str,
        settings: Value,
    ) -> Result<Value, DeployError> {
        let d = self.deployment(deployment)?;
        if !settings.is_object() {
            return Err(DeployError::BadRequest(
                "deployment settings must be a mapping".into(),
            ));
        }
        document::check_bounds(&settings, "the deployment settings")
            .map_err(DeployError::BadRequest)?;
        self.store.set_deployment_settings(d.id, &settings)?;
        Ok(settings)
    }

    pub fn organization_settings(&self) -> Result<Value, DeployError> {
        Ok(self.store.organization_settings()?)
    }

    pub fn set_organization_settings(&self, settings: Value) -> Result<Value, DeployError> {
        if !settings.is_object() {
            return Err(DeployError::BadRequest(
                "organization settings must be a mapping".into(),
            ));
        }
        document::check_bounds(&settings, "the organization settings")
            .map_err(DeployError::BadRequest)?;
        self.store.set_organization_settings(&settings)?;
        Ok(settings)
    }

    // ---- locations ---------------------------------------------------------------------

    /// `addOrUpdateLocationFromDocument`: validates and registers one location document.
    pub fn add_or_update_location(
        &self,
        deployment: &str,
        document: Value,
        actor: &Actor,
    ) -> Result<Revision, DeployError> {
        let name = document::validate_location(&document, "location document")
            .map_err(DeployError::InvalidLocation)?;
        let d = self.deployment(deployment)?;
        let change = LocationChange::Put {
            name,
            document,
            action: RevisionAction::Registered,
        };
        let mut revs = self.apply(&d, &[change], ApplyMode::Merge, actor)?;
        revs.pop()
            .ok_or_else(|| DeployError::BadRequest("nothing was registered".into()))
    }

    /// `deployLocations`: `{"locations": [...]}` registered all at once; if any document is
    /// invalid nothing changes. Other locations of the deployment are kept.
    pub fn deploy_locations(
        &self,
        deployment: &str,
        document: &Value,
        actor: &Actor,
    ) -> Result<Vec<Revision>, DeployError> {
        self.put_all(deployment, document, ApplyMode::Merge, actor)
    }

    /// `reconcileLocationsFromDocument`: makes the deployment's locations exactly those of the
    /// document (others are deleted), in one transaction. Returns every revision written,
    /// deletions included.
    pub fn reconcile_locations(
        &self,
        deployment: &str,
        document: &Value,
        actor: &Actor,
    ) -> Result<Vec<Revision>, DeployError> {
        self.put_all(deployment, document, ApplyMode::ReplaceAll, actor)
    }

    fn put_all(
        &self,
        deployment: &str,
        document: &Value,
        mode: ApplyMode,
        actor: &Actor,
    ) -> Result<Vec<Revision>, DeployError> {
        let entries = document::validate_locations_document(document)
            .map_err(DeployError::InvalidLocation)?;
        let d = self.deployment(deployment)?;
        let changes: Vec<LocationChange> = entries
            .into_iter()
            .map(|(name, document)| LocationChange::Put {
                name,
                document,
                action: RevisionAction::Registered,
            })
            .collect();
        self.apply(&d, &changes, mode, actor)
    }

    pub fn delete_location(
        &self,
        deployment: &str,
        location: &str,
        actor: &Actor,
    ) -> Result<Revision, DeployError> {
        let d = self.deployment(deployment)?;
        let change = LocationChange::Delete {
            name: location.to_string(),
        };
        let mut revs = self.apply(&d, &[change], ApplyMode::Merge, actor)?;
        revs.pop()
            .ok_or_else(|| DeployError::BadRequest("nothing was deleted".into()))
    }

    fn apply(
        &self,
        d: &DeploymentRecord,
        changes: &[LocationChange],
        mode: ApplyMode,
        actor: &Actor,
    ) -> Result<Vec<Revision>, DeployError> {
        match self.store.apply_locations(d.id, changes, mode, actor)? {
            Ok(revs) => Ok(revs),
            Err(ApplyError::TooLarge { bytes }) => {
                Err(DeployError::InvalidLocation(vec![format!(
                    "deployment '{}' would hold {bytes} bytes of location documents, above the \
                 limit of {MAX_DEPLOYMENT_BYTES}; nothing was changed: make documents smaller or \
                 delete unused locations",
                    d.name
                )]))
            }
            Err(ApplyError::MissingLocation(location)) => Err(DeployError::UnknownLocation {
                deployment: d.name.clone(),
                location,
            }),
        }
    }

    /// Current locations in registration order.
    pub fn locations(&self, deployment: &str) -> Result<Vec<StoredLocation>, DeployError> {
        let d = self.deployment(deployment)?;
        Ok(self.store.locations(d.id)?)
    }

    /// `locationsAsDocument`: `{"locations": [document, ...]}`.
    pub fn locations_document(&self, deployment: &str) -> Result<Value, DeployError> {
        let docs: Vec<Value> = self
            .locations(deployment)?
            .into_iter()
            .map(|l| l.document)
            .collect();
        Ok(json!({ "locations": docs }))
    }

    /// The revisions of a location `page` selects, oldest first (deletions included).
    pub fn history(
        &self,
        deployment: &str,
        location: &str,
        page: HistoryPage,
    ) -> Result<Vec<Revision>, DeployError> {
        let d = self.deployment(deployment)?;
        let revs = self.store.history(d.id, location, page)?;
        if revs.is_empty() && page.before.is_none() {
            return Err(DeployError::UnknownLocation {
                deployment: d.name,
                location: location.to_string(),
            });
        }
        Ok(revs)
    }

    /// Registers an earlier document again, as a new revision. `to: None` picks the latest
    /// earlier document that differs from the current one (after a deletion: the last
    /// document the location had).
    pub fn rollback(
        &self,
        deployment: &str,
        location: &str,
        to: Option<i64>,
        actor: &Actor,
    ) -> Result<Revision, DeployError> {
        let d = self.deployment(deployment)?;
        let history = self.history(&d.name, location, HistoryPage::ALL)?;
        let target = match to {
            Some(id) => history
                .iter()
                .find(|r| r.id == id && r.document.is_some())
                .ok_or_else(|| DeployError::UnknownRevision {
                    deployment: d.name.clone(),
                    location: location.to_string(),
                    revision: id,
                })?,
            None => {
                let current = history.last().and_then(|r| r.document.as_ref());
                history
                    .iter()
                    .rev()
                    .skip(usize::from(current.is_some()))
                    .find(|r| r.document.is_some() && r.document.as_ref() != current)
                    .ok_or_else(|| DeployError::NothingToRollBack {
                        deployment: d.name.clone(),
                        location: location.to_string(),
                    })?
            }
        };
        let document = target.document.clone().unwrap_or(Value::Null);
        let change = LocationChange::Put {
            name: location.to_string(),
            document,
            action: RevisionAction::RolledBack {
                from_revision: target.id,
            },
        };
        let mut revs = self.apply(&d, &[change], ApplyMode::Merge, actor)?;
        revs.pop()
            .ok_or_else(|| DeployError::BadRequest("nothing was rolled back".into()))
    }

    // ---- tokens ------------------------------------------------------------------------

    /// Creates a token and returns it once, with its stored description. Only its hash is
    /// kept. A deployment-scoped token needs the deployment to exist.
    pub fn create_token(
        &self,
        scope: TokenScope,
        label: Option<&str>,
    ) -> Result<(TokenInfo, String), DeployError> {
        if let TokenScope::Deployment(name) = &scope {
            self.deployment(name)?;
        }
        let token = tokens::generate()?;
        let info = self
            .store
            .insert_token(&tokens::hash(&token), &scope, label)?;
        Ok((info, token))
    }

    /// The live token with this secret; `None` if unknown or revoked.
    pub fn authenticate(&self, token: &str) -> Result<Option<TokenInfo>, DeployError> {
        Ok(self
            .store
            .token_by_hash(&tokens::hash(token))?
            .filter(|t| !t.revoked))
    }

    pub fn tokens(&self) -> Result<Vec<TokenInfo>, DeployError> {
        Ok(self.store.tokens()?)
    }

    /// Records that `token` authenticated a request, unless that was recorded less than a
    /// minute ago; the write happens on a blocking thread and its failure is only logged.
    /// Needs a Tokio runtime (the server's).
    pub fn note_token_use(&self, token: &TokenInfo) {
        let now = super::store::now_ms();
        {
            let mut seen = self.token_use.lock().unwrap_or_else(|p| p.into_inner());
            let last = seen
                .get(&token.id)
                .copied()
                .or(token.last_used_at_ms)
                .unwrap_or(0);
            if now - last < TOKEN_USE_INTERVAL_MS {
                return;
            }
            seen.insert(token.id, now);
        }
        let store = self.store.clone();
        let id = token.id;
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.touch_token(id, now) {
                tracing::warn!(token_id = id, "cannot record the token's use: {e}");
            }
        });
    }

    /// `false` if there is no live token with that id.
    pub fn revoke_token(&self, id: i64) -> Result<bool, DeployError> {
        Ok(self.store.revoke_token(id)?)
    }
}

/// Deployment names appear in URLs (`/{deployment}/graphql`), so they stay URL-safe.
pub fn check_deployment_name(name: &str) -> Result<(), DeployError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(DeployError::InvalidDeploymentName(name.to_string()))
    }
}

/// A readable, URL-safe deployment name from a branch name (`feature/New-UI` → `feature-new-ui`).
fn branch_slug(branch: &str) -> String {
    let mut slug = String::new();
    for c in branch.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.truncate(40);
    let slug = slug.trim_end_matches('-').to_string();
    if slug.is_empty() {
        "branch".to_string()
    } else {
        slug
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_become_url_safe_slugs() {
        assert_eq!(branch_slug("feature/New-UI"), "feature-new-ui");
        assert_eq!(branch_slug("--x__y--"), "x-y");
        assert_eq!(branch_slug("ü"), "branch");
    }

    #[test]
    fn deployment_names_are_checked() {
        assert!(check_deployment_name("prod").is_ok());
        assert!(check_deployment_name("my_branch-2").is_ok());
        assert!(check_deployment_name("a/b").is_err());
        assert!(check_deployment_name("").is_err());
    }
}
