//! Register-and-wait, the last step of every command that registers: send the documents in
//! one `deployLocations`, wait for them to load as a named [`WaitPolicy`] says, and report
//! per location. [`register`] does it for a plan (`deploy`), [`register_documents`] for
//! documents built elsewhere (`ci deploy`, Python-executable deploys).
//!
//! A location never moves backwards: when its deployed `git.commit_hash` descends from the
//! commit being deployed (another pipeline got there first), it is skipped unless `force`.
//! The check runs inside [`Deployment::deploy_locations`], under the local store's lock.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::target::{Deployment, Documents, Progress};
use super::wait::WaitPolicy;
use crate::api::document::{self, DocumentFlags, GitMetadata};
use crate::api::wait::LoadResult;
use crate::api::{ApiError, LoadFailure};
use crate::changes::Repo;
use crate::error::Error;
use crate::plan::{Action, Plan};

#[derive(Debug, Clone, Default)]
pub struct RegisterOptions {
    /// Register even when the deployed commit is newer.
    pub force: bool,
    /// `git` facts for every document; `commit_hash` defaults to the plan's head commit.
    pub git: GitMetadata,
    pub wait: WaitPolicy,
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
    /// Registered, but waiting for it to load failed (no agent, a timeout, the API gone):
    /// whether it loaded is not known.
    Unconfirmed,
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
                    RegisterStatus::Loaded
                        | RegisterStatus::LoadFailed
                        | RegisterStatus::Unconfirmed
                )
            })
            .map(|l| l.location.as_str())
            .collect()
    }
}

impl RegisterReport {
    /// For people: one row per location, load errors in full.
    pub fn table(&self) -> String {
        let mut out = String::new();
        if self.locations.is_empty() {
            let _ = writeln!(out, "\nnothing to register: every location is up to date");
            return out;
        }
        let _ = writeln!(
            out,
            "\nregistration in {} at commit {}:",
            self.target,
            short(&self.commit)
        );
        let width = self
            .locations
            .iter()
            .map(|l| l.location.len())
            .max()
            .unwrap_or(0);
        for l in &self.locations {
            let status = match l.status {
                RegisterStatus::Loaded => "loaded",
                RegisterStatus::LoadFailed => "LOAD FAILED",
                RegisterStatus::SkippedBackwards => "skipped",
                RegisterStatus::NotRegistered => "not registered",
                RegisterStatus::Unconfirmed => "NOT CONFIRMED",
            };
            let _ = writeln!(
                out,
                "  {:width$}  {:8}  {:14}  {}",
                l.location,
                l.action.as_str(),
                status,
                l.image.as_deref().unwrap_or("-"),
            );
            if !matches!(l.status, RegisterStatus::Loaded) {
                let _ = writeln!(out, "  {:width$}  {}", "", l.message);
            }
            if let Some(error) = &l.load_error {
                for line in error.render().lines() {
                    let _ = writeln!(out, "  {:width$}    {line}", "");
                }
            }
        }
        out
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
    target: &dyn Deployment,
    options: &RegisterOptions,
    progress: Progress<'_>,
) -> Result<RegisterReport, Error> {
    let mut reports = Vec::new();
    let sent = target
        .deploy_locations(&mut |current| {
            let decision = decide(plan, images, current, options)?;
            reports = decision.reports;
            Ok(decision.send)
        })
        .await?;
    let names: Vec<&str> = sent.iter().map(|(n, _)| n.as_str()).collect();
    if !names.is_empty() {
        progress(&format!(
            "Registered {} in {}; waiting for {} to load...",
            names.join(", "),
            target.describe(),
            if names.len() == 1 { "it" } else { "them" }
        ));
    }
    // Registered already: a failed wait is reported per location, not instead of the report
    // (the JSON, the CI feedback and the exit code still say what was registered).
    let results = match target.wait(&sent, &options.wait, progress).await {
        Ok(results) => results,
        Err(e) => {
            let hint = e.hint();
            let why = match hint.is_empty() {
                true => e.to_string(),
                false => format!("{e} ({hint})"),
            };
            for r in reports.iter_mut() {
                if sent.iter().any(|(name, _)| *name == r.location) {
                    r.status = RegisterStatus::Unconfirmed;
                    r.message = format!("registered, but its loading is not confirmed: {why}");
                }
            }
            Vec::new()
        }
    };
    for (name, result) in results {
        if let Some(r) = reports.iter_mut().find(|r| r.location == name) {
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
        deployment: target.name().to_string(),
        commit: plan.head.commit.clone(),
        locations: reports,
    })
}

/// Registers `documents` (`(name, document)`) as they are, all at once (one bad document
/// registers none of them), and waits as `policy` says; returns how each loaded (see
/// `api::wait::failures_to_error`).
pub async fn register_documents(
    target: &dyn Deployment,
    documents: Vec<(String, Value)>,
    policy: &WaitPolicy,
    progress: Progress<'_>,
) -> Result<Vec<(String, LoadResult)>, Error> {
    let sent = send_documents(target, documents).await?;
    target.wait(&sent, policy, progress).await
}

/// The first half of [`register_documents`]: sends them, returns what was sent.
pub async fn send_documents(
    target: &dyn Deployment,
    documents: Vec<(String, Value)>,
) -> Result<Vec<(String, Value)>, Error> {
    let mut documents = Some(documents);
    target
        .deploy_locations(&mut |_| Ok(documents.take().unwrap_or_default()))
        .await
}

fn decide(
    plan: &Plan,
    images: &BTreeMap<String, String>,
    current: &Documents,
    options: &RegisterOptions,
) -> Result<Decision, Error> {
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
        let previous = previous_commit.as_deref();
        if let Some(why) = backwards(&mut repo, plan, previous, &commit, options.force)? {
            report.status = RegisterStatus::SkippedBackwards;
            report.message = why;
            reports.push(report);
            continue;
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

/// Why a location whose deployed commit is `previous` must not move back to `commit`
/// (another pipeline got there first); `None` to register it. `repo` is opened on first need.
pub(crate) fn backwards(
    repo: &mut Option<Repo>,
    plan: &Plan,
    previous: Option<&str>,
    commit: &str,
    force: bool,
) -> Result<Option<String>, ApiError> {
    let Some(prev) = previous.filter(|p| !force && *p != commit) else {
        return Ok(None);
    };
    if repo.is_none() {
        *repo = Some(Repo::discover(&plan.repository).map_err(|e| ApiError::Git {
            message: format!("cannot open the repository to compare commits: {e}"),
        })?);
    }
    let newer = match repo {
        Some(repo) => descends_from(repo, prev, commit)?,
        None => false,
    };
    Ok(newer.then(|| {
        format!(
            "skipped: the deployed commit {} is newer than {} (another pipeline got there \
             first); pass --force to deploy the older commit anyway",
            short(prev),
            short(commit)
        )
    }))
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

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}
