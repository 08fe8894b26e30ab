//! The dagster-cloud-compatible commands: the same command lines, the same requests, the same
//! results printed on stdout (progress on stderr).

use crate::api::document::{self, DocumentFlags, GitMetadata};
use crate::api::ops::{self, BranchData, CommitData};
use crate::api::wait::failures_to_error;
use crate::api::{ApiToken, Settings, SettingsFlags};
use crate::cli::api::{
    BranchCreateArgs, BranchDeploymentCommand, CodeSourceArgs, ConnectionArgs, DeploymentCommand,
    LocationArgs, SnapshotBaseCondition, SyncLocationsArgs, WaitArgs,
};
use crate::deploy::WaitPolicy;
use crate::deploy::route::{self, SnapshotBase};
use crate::deploy::target::{self, Deployment, Remote};
use crate::error::Error;
use crate::output;

pub async fn run_deployment(command: &DeploymentCommand) -> Result<u8, Error> {
    match command {
        DeploymentCommand::AddLocation(a) | DeploymentCommand::UpdateLocation(a) => {
            add_location(a).await
        }
        DeploymentCommand::DeleteLocation(a) => {
            let client = settings(&a.connection, None)?.deployment_client("delete-location")?;
            ops::delete_location(&client, &a.location).await?;
            output::result_line(&format!("Deleted location {}.", a.location));
            Ok(0)
        }
        DeploymentCommand::ListLocations(a) => {
            // Dagster+ or `serve` when settings name one, else what the local store holds.
            let s = settings(&a.connection, None)?;
            let deployment =
                target::existing_or_explain(&s, &super::current_dir()?, "list-locations")?;
            let locations = deployment.list_locations().await?;
            output::result_line("Listing locations...");
            for l in locations {
                let mut line = vec![l.name];
                for (value, label) in [
                    (l.python_file, "File"),
                    (l.package_name, "Package"),
                    (l.image, "Image"),
                ] {
                    if let Some(v) = value {
                        line.push(format!("{label}: {v}"));
                    }
                }
                output::result_line(&line.join("\t"));
            }
            Ok(0)
        }
        DeploymentCommand::PullLocations(a) => {
            let s = settings(&a.connection, None)?;
            let doc = match s.has_remote() {
                // The server's document as it is (its order, any other keys), as the
                // reference prints it.
                true => ops::locations_as_document(&s.deployment_client("pull-locations")?).await?,
                // No settings: what the local store holds.
                false => {
                    let deployment =
                        target::existing_or_explain(&s, &super::current_dir()?, "pull-locations")?;
                    let docs = deployment.current_documents().await?;
                    serde_json::json!({ "locations": docs.into_values().collect::<Vec<_>>() })
                }
            };
            output::result(&to_yaml(&doc)?);
            Ok(0)
        }
        DeploymentCommand::SyncLocations(a) => sync_locations(a).await,
    }
}

pub async fn run_branch_deployment(command: &BranchDeploymentCommand) -> Result<u8, Error> {
    match command {
        BranchDeploymentCommand::CreateOrUpdate(a) => create_or_update(a).await,
        BranchDeploymentCommand::Delete(a) => {
            let s = settings(&a.connection, None)?;
            let what = "branch-deployment delete";
            let name = s.deployment(what)?.to_string();
            let client = s.branch_deletion_client(what)?;
            ops::delete_branch_deployment(&client, &name).await?;
            output::progress(&format!("Deleted branch deployment {name}."));
            Ok(0)
        }
    }
}

/// Settings from the connection flags (plus timeouts), environment and config file.
pub(super) fn settings(conn: &ConnectionArgs, wait: Option<&WaitArgs>) -> Result<Settings, Error> {
    let flags = SettingsFlags {
        url: conn.url.clone(),
        organization: conn.organization.clone(),
        deployment: conn.deployment.clone(),
        api_token: conn.api_token.clone().and_then(ApiToken::new),
        location_load_timeout: wait.and_then(|w| w.location_load_timeout),
        agent_heartbeat_timeout: wait.and_then(|w| w.agent_heartbeat_timeout),
    };
    super::resolve_settings(&flags)
}

fn to_yaml(doc: &serde_json::Value) -> Result<String, Error> {
    serde_yaml_ng::to_string(doc).map_err(|e| Error::Failed {
        message: format!("cannot render the locations as YAML: {e}"),
        hint: "report this as a bug".into(),
    })
}

async fn add_location(a: &LocationArgs) -> Result<u8, Error> {
    let s = settings(&a.connection, Some(&a.wait))?;
    let name = a.location.clone().or_else(|| a.location_name.clone());
    let (entry, name) = match (&a.location_file, name) {
        (Some(path), name) => {
            let (entry, name) = document::read_location_file(path, name.as_deref())?;
            (Some(entry), name)
        }
        (None, Some(name)) => (None, name),
        (None, None) => {
            return Err(Error::Usage {
                message: "no location name provided".into(),
                hint: "give the location name as an argument, or a location file with \
                       --location-file/--from"
                    .into(),
            });
        }
    };
    if a.code.sources_given() > 1 {
        return Err(Error::Usage {
            message: "more than one of --python-file, --package-name, --module-name and \
                      --autoload-defs-module-name"
                .into(),
            hint: "a location has exactly one code source; pass one of them".into(),
        });
    }
    let flags = document_flags(&a.code, a.image.clone());
    let doc = document::location_document(&name, entry.as_ref(), &flags);
    let remote = Remote {
        client: s.deployment_client("add-location")?,
    };
    ops::add_or_update_location(&remote.client, &doc).await?;
    output::result_line(&format!("Added or updated location {name}."));
    wait_and_report(&remote, &s, vec![(name, doc)]).await
}

async fn sync_locations(a: &SyncLocationsArgs) -> Result<u8, Error> {
    let s = settings(&a.connection, Some(&a.wait))?;
    let raw = document::read_yaml(&a.workspace)?;
    let doc = document::workspace_document(raw, &a.workspace)?;
    let remote = Remote {
        client: s.deployment_client("sync-locations")?,
    };
    let names = ops::reconcile_locations(&remote.client, &doc).await?;
    output::result_line(&format!("Synced locations: {}", names.join(", ")));
    let sent = names
        .into_iter()
        .map(|n| (n, serde_json::Value::Null))
        .collect();
    wait_and_report(&remote, &s, sent).await
}

/// Waits as the reference's `deployment` commands do ([`WaitPolicy::deployment_command`]).
async fn wait_and_report(
    remote: &Remote,
    s: &Settings,
    sent: Vec<(String, serde_json::Value)>,
) -> Result<u8, Error> {
    let policy = WaitPolicy::deployment_command(s);
    if !policy.waits() {
        return Ok(0);
    }
    let list: Vec<&str> = sent.iter().map(|(n, _)| n.as_str()).collect();
    let list = list.join(", ");
    output::progress(&format!("Waiting for agent to sync changes to {list}..."));
    let results = remote
        .wait(&sent, &policy, &|line| output::progress(line))
        .await?;
    failures_to_error(&results)?;
    output::result_line(&format!(
        "Agent synced changes to {list}. Changes should now be visible."
    ));
    Ok(0)
}

async fn create_or_update(a: &BranchCreateArgs) -> Result<u8, Error> {
    let s = settings(&a.connection, None)?;
    let mut commit = CommitData {
        commit_hash: a.commit_hash.clone().unwrap_or_default(),
        timestamp: a.timestamp.unwrap_or_default(),
        commit_message: a.commit_message.clone(),
        commit_url: None,
        author_name: a.author_name.clone(),
        author_email: a.author_email.clone(),
        author_avatar_url: a.author_avatar_url.clone(),
    };
    if a.read_git_state {
        let head = crate::ci::pull_request::head_commit(&super::current_dir()?)?;
        commit = CommitData {
            commit_url: commit.commit_url,
            author_avatar_url: commit.author_avatar_url,
            ..head
        };
    }
    if commit.commit_hash.is_empty() || commit.timestamp == 0.0 {
        return Err(Error::Usage {
            message: "no commit hash or timestamp".into(),
            hint: "pass --commit-hash and --timestamp, or --read-git-state".into(),
        });
    }
    let branch = BranchData {
        repo_name: a.repo_name.clone(),
        branch_name: a.branch_name.clone(),
        branch_url: a.branch_url.clone(),
        pull_request_url: a.pull_request_url.clone(),
        pull_request_status: a.pull_request_status.clone(),
        pull_request_number: a.pull_request_number.clone(),
    };
    let name = route::create_or_update_branch(
        &s,
        "branch-deployment create-or-update",
        &branch,
        &commit,
        a.base_deployment_name.as_deref(),
        snapshot_base(a.snapshot_base_condition),
    )
    .await?;
    output::result_line(&name);
    Ok(0)
}

/// The document fields the code-source flags set (`image` beside them).
pub(super) fn document_flags(code: &CodeSourceArgs, image: Option<String>) -> DocumentFlags {
    DocumentFlags {
        image,
        python_file: code.python_file.clone(),
        package_name: code.package_name.clone(),
        module_name: code.module_name.clone(),
        autoload_defs_module_name: code.autoload_defs_module_name.clone(),
        working_directory: code.working_directory.clone(),
        executable_path: code.executable_path.clone(),
        attribute: code.attribute.clone(),
        git: GitMetadata {
            commit_hash: code.commit_hash.clone(),
            url: code.git_url.clone(),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The library's name for `--snapshot-base-condition`.
pub(super) fn snapshot_base(c: Option<SnapshotBaseCondition>) -> Option<SnapshotBase> {
    c.map(|c| match c {
        SnapshotBaseCondition::OnCreate => SnapshotBase::OnCreate,
        SnapshotBaseCondition::OnUpdate => SnapshotBase::OnUpdate,
    })
}
