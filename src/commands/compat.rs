//! The dagster-cloud-compatible commands: the same command lines, the same requests, the same
//! results printed on stdout (progress on stderr).

use std::time::Duration;

use crate::api::document::{self, DocumentFlags, GitMetadata};
use crate::api::ops::{self, BranchData, CommitData};
use crate::api::wait::{self, WaitOptions};
use crate::api::{ApiError, ApiToken, Client, ClientOptions, Settings, SettingsFlags};
use crate::cli::api::{
    BranchCreateArgs, BranchDeploymentCommand, CodeSourceArgs, ConnectionArgs, DeploymentCommand,
    LocationArgs, SnapshotBaseCondition, SyncLocationsArgs, WaitArgs,
};
use crate::error::Error;

pub fn run_deployment(command: &DeploymentCommand) -> Result<u8, Error> {
    let rt = super::runtime()?;
    match command {
        DeploymentCommand::AddLocation(a) | DeploymentCommand::UpdateLocation(a) => {
            rt.block_on(add_location(a))
        }
        DeploymentCommand::DeleteLocation(a) => rt.block_on(async {
            let client = deployment_client(&settings(&a.connection, None)?, "delete-location")?;
            ops::delete_location(&client, &a.location).await?;
            println!("Deleted location {}.", a.location);
            Ok(0)
        }),
        DeploymentCommand::ListLocations(a) => rt.block_on(async {
            let client = deployment_client(&settings(&a.connection, None)?, "list-locations")?;
            let entries = ops::workspace_entries(&client).await?;
            println!("Listing locations...");
            for e in entries {
                let mut line = vec![e.location_name.clone()];
                for (key, label) in [
                    ("python_file", "File"),
                    ("package_name", "Package"),
                    ("image", "Image"),
                ] {
                    if let Some(v) = e.metadata[key].as_str().filter(|v| !v.is_empty()) {
                        line.push(format!("{label}: {v}"));
                    }
                }
                println!("{}", line.join("\t"));
            }
            Ok(0)
        }),
        DeploymentCommand::PullLocations(a) => rt.block_on(async {
            let client = deployment_client(&settings(&a.connection, None)?, "pull-locations")?;
            let doc = ops::locations_as_document(&client).await?;
            print!("{}", to_yaml(&doc)?);
            Ok(0)
        }),
        DeploymentCommand::SyncLocations(a) => rt.block_on(sync_locations(a)),
    }
}

pub fn run_branch_deployment(command: &BranchDeploymentCommand) -> Result<u8, Error> {
    let rt = super::runtime()?;
    match command {
        BranchDeploymentCommand::CreateOrUpdate(a) => rt.block_on(create_or_update(a)),
        BranchDeploymentCommand::Delete(a) => rt.block_on(async {
            let s = settings(&a.connection, None)?;
            let what = "branch-deployment delete";
            let name = s.deployment(what)?.to_string();
            // As the reference: the deployment URL, but no deployment header.
            let client = Client::new(
                &s.deployment_url(what)?,
                s.token(what)?.clone(),
                None,
                ClientOptions::default(),
            )?;
            ops::delete_branch_deployment(&client, &name).await?;
            eprintln!("Deleted branch deployment {name}.");
            Ok(0)
        }),
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
    Ok(Settings::resolve(&flags, &super::process_env)?)
}

/// A client for the deployment URL with the deployment header, as `deployment *` commands use.
pub(super) fn deployment_client(s: &Settings, what: &str) -> Result<Client, ApiError> {
    Client::new(
        &s.deployment_url(what)?,
        s.token(what)?.clone(),
        s.deployment.as_deref(),
        ClientOptions::default(),
    )
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
    let client = deployment_client(&s, "add-location")?;
    ops::add_or_update_location(&client, &doc).await?;
    println!("Added or updated location {name}.");
    wait_and_report(&client, &s, &[name]).await
}

async fn sync_locations(a: &SyncLocationsArgs) -> Result<u8, Error> {
    let s = settings(&a.connection, Some(&a.wait))?;
    let raw = document::read_yaml(&a.workspace)?;
    let doc = document::workspace_document(raw, &a.workspace)?;
    let client = deployment_client(&s, "sync-locations")?;
    let names = ops::reconcile_locations(&client, &doc).await?;
    println!("Synced locations: {}", names.join(", "));
    wait_and_report(&client, &s, &names).await
}

/// Waits as the reference's `deployment` commands do: the load timeout, and a heartbeat
/// timeout only when one is set; both zero (or unset) skips waiting.
pub(super) async fn wait_and_report(
    client: &Client,
    s: &Settings,
    names: &[String],
) -> Result<u8, Error> {
    let heartbeat = s.agent_heartbeat_timeout;
    if s.location_load_timeout.is_zero() && heartbeat.is_none() {
        return Ok(0);
    }
    let list = names.join(", ");
    eprintln!("Waiting for agent to sync changes to {list}...");
    let opts = WaitOptions::new(
        s.location_load_timeout.max(Duration::from_millis(1)),
        heartbeat,
    );
    let results = wait::wait_for_load(client, names, &opts, &|line| eprintln!("{line}")).await?;
    wait::failures_to_error(&results)?;
    println!("Agent synced changes to {list}. Changes should now be visible.");
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
        let cwd = std::env::current_dir().map_err(|e| Error::Failed {
            message: format!("cannot read the current folder: {e}"),
            hint: "run from an existing folder".into(),
        })?;
        let head = crate::ci::pull_request::head_commit(&cwd)?;
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
    let name = create_or_update_branch(
        &s,
        "branch-deployment create-or-update",
        &branch,
        &commit,
        a.base_deployment_name.as_deref(),
        a.snapshot_base_condition,
    )
    .await?;
    println!("{name}");
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

/// `createOrUpdateBranchDeployment` at the organisation URL (no deployment header); returns
/// the branch deployment's name. Shared with `ci init` and `ci branch-deployment`.
pub(super) async fn create_or_update_branch(
    s: &Settings,
    what: &str,
    branch: &BranchData,
    commit: &CommitData,
    base_deployment_name: Option<&str>,
    condition: Option<SnapshotBaseCondition>,
) -> Result<String, Error> {
    let client = Client::new(
        &s.organization_url(what)?,
        s.token(what)?.clone(),
        None,
        ClientOptions::default(),
    )?;
    let condition = condition.map(|c| match c {
        SnapshotBaseCondition::OnCreate => "ON_CREATE",
        SnapshotBaseCondition::OnUpdate => "ON_UPDATE",
    });
    Ok(ops::create_or_update_branch_deployment(
        &client,
        branch,
        commit,
        base_deployment_name,
        condition,
    )
    .await?)
}
