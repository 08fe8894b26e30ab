//! Waiting for registered locations to load: first until an agent heartbeats (`agents` with
//! `RUNNING`), then `workspaceOrError` until every target location is `LOADED`. Loaded with
//! an error is a result, not a failure of the wait: callers decide what it means.
//!
//! Polls start fast (100 ms) and back off to `max_poll`: our own server answers at once, and
//! Dagster+ takes seconds anyway.

use std::time::{Duration, Instant};

use super::client::Client;
use super::error::{ApiError, LoadFailure};
use super::ops;

#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// Overall limit (the reference's `--location-load-timeout`, default 3600 s).
    pub load_timeout: Duration,
    /// How long to wait for an agent to heartbeat; `None`: only the load timeout applies.
    pub heartbeat_timeout: Option<Duration>,
    pub first_poll: Duration,
    pub max_poll: Duration,
}

impl WaitOptions {
    pub fn new(load_timeout: Duration, heartbeat_timeout: Option<Duration>) -> Self {
        WaitOptions {
            load_timeout,
            heartbeat_timeout,
            first_poll: Duration::from_millis(100),
            max_poll: Duration::from_secs(3),
        }
    }
}

/// How one location ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadResult {
    Loaded,
    Failed(LoadFailure),
}

/// Waits until every location in `locations` is LOADED; returns their results in the same
/// order. `progress` gets a line now and then for people.
pub async fn wait_for_load(
    client: &Client,
    locations: &[String],
    opts: &WaitOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Vec<(String, LoadResult)>, ApiError> {
    if locations.is_empty() {
        return Ok(Vec::new());
    }
    let started = Instant::now();
    let mut agent_seen = false;
    let mut poll = opts.first_poll;
    let mut last_note = Instant::now();
    loop {
        if !agent_seen {
            if let Some(limit) = opts.heartbeat_timeout
                && started.elapsed() > limit
            {
                return Err(ApiError::NoAgent { timeout: limit });
            }
            agent_seen = ops::agent_running(client).await?;
        }
        if started.elapsed() > opts.load_timeout {
            return Err(ApiError::LoadTimeout {
                timeout: opts.load_timeout,
                locations: locations.to_vec(),
            });
        }
        if agent_seen {
            let entries = ops::workspace_or_error(client).await?;
            let loaded = |name: &String| {
                entries
                    .iter()
                    .find(|e| &e.name == name)
                    .filter(|e| e.load_status == "LOADED")
            };
            if locations.iter().all(|l| loaded(l).is_some()) {
                return Ok(locations
                    .iter()
                    .map(|name| {
                        let result = match loaded(name).and_then(|e| e.error.clone()) {
                            Some(failure) => LoadResult::Failed(failure),
                            None => LoadResult::Loaded,
                        };
                        (name.clone(), result)
                    })
                    .collect());
            }
        }
        if last_note.elapsed() >= Duration::from_secs(9) {
            progress(&format!(
                "Still waiting for {} to load ({} s so far)...",
                locations.join(", "),
                started.elapsed().as_secs()
            ));
            last_note = Instant::now();
        }
        tokio::time::sleep(poll).await;
        poll = (poll * 2).min(opts.max_poll);
    }
}

/// The results as an error when any location failed to load.
pub fn failures_to_error(results: &[(String, LoadResult)]) -> Result<(), ApiError> {
    let failures: Vec<LoadFailure> = results
        .iter()
        .filter_map(|(_, r)| match r {
            LoadResult::Failed(f) => Some(f.clone()),
            LoadResult::Loaded => None,
        })
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(ApiError::LoadFailed { failures })
    }
}
