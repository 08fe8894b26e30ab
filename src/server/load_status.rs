//! The built-in agent's view of each location: LOADED when its image exists, a load error
//! naming the image when it does not. Checks run in the background, only against registries
//! the server trusts (`RegistryAccess::trusts`), and are cached per image reference (at most
//! `MAX_CACHED_IMAGES`); a registration re-checks an image unless it is known to exist.
//! A Python-executable location (`pex_metadata`, no image) is LOADED when every file its
//! `pex_tag` names is in its deployment's blob store, and a load error naming the missing ones
//! otherwise. A location whose stored document cannot be read is a load error of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::blobs::BlobStore;
use super::document;
use super::registry::{self, ImageCheck, RegistryAccess};
use super::store::StoredLocation;
use crate::registry::RegistryClient;

/// Images whose check is cached or running; when full, finished checks are forgotten (and
/// redone when asked for), and no new check starts while every entry is still running.
const MAX_CACHED_IMAGES: usize = 1024;

/// The file names of a `pex_tag` (`files=deps-1.pex:source-2.pex`).
pub(crate) fn pex_tag_files(tag: &str) -> Vec<&str> {
    tag.strip_prefix("files=")
        .unwrap_or(tag)
        .split(':')
        .filter(|s| !s.is_empty())
        .collect()
}

/// What the agent reports for one location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadStatus {
    Loading,
    Loaded,
    /// Loaded with an error (the protocol's `loadStatus: LOADED` + `PythonError`).
    Failed(PythonTrace),
}

/// A load error as the protocol's `PythonError` carries it: Dagster's serialized Python error
/// from a code server, or the agent's own message (then stack and chain are empty).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PythonTrace {
    pub message: String,
    /// Frames, each ending in a newline, as Python's `traceback` formats them.
    pub stack: Vec<String>,
    /// Earlier errors, innermost last.
    pub chain: Vec<ChainLink>,
}

/// One earlier error of a `PythonTrace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    /// `raise ... from` (the cause); `false`: raised while handling it (the context).
    pub explicit: bool,
    pub message: String,
    pub stack: Vec<String>,
}

impl PythonTrace {
    pub fn message(message: impl Into<String>) -> Self {
        PythonTrace {
            message: message.into(),
            ..PythonTrace::default()
        }
    }
}

#[derive(Debug, Clone)]
enum ImageState {
    Checking,
    Done(ImageCheck),
}

pub(crate) struct LoadChecker {
    /// `None`: checks are off and every location is LOADED.
    access: Option<RegistryAccess>,
    /// Registries images may be checked in besides Docker Hub and those with credentials.
    trusted: Vec<String>,
    client: RegistryClient,
    images: Mutex<HashMap<String, ImageState>>,
    /// Where Python-executable files are; `None` (the local store) skips that check.
    blobs: Option<BlobStore>,
}

impl LoadChecker {
    pub(crate) fn new(
        access: Option<RegistryAccess>,
        trusted: Vec<String>,
        blobs: Option<BlobStore>,
    ) -> Arc<Self> {
        let client = access
            .as_ref()
            .map(RegistryAccess::client)
            .unwrap_or_default();
        Arc::new(LoadChecker {
            access,
            trusted,
            client,
            images: Mutex::new(HashMap::new()),
            blobs,
        })
    }

    /// The status of a location of `deployment`; starts a check for an image never seen.
    pub(crate) fn status(
        self: &Arc<Self>,
        deployment: &str,
        location: &StoredLocation,
    ) -> LoadStatus {
        if let Some(why) = &location.damaged {
            return LoadStatus::Failed(PythonTrace::message(why.clone()));
        }
        let doc = &location.document;
        if let Some(failed) = self.missing_pex_files(deployment, doc) {
            return failed;
        }
        let Some(image) = self.image_to_check(doc) else {
            return LoadStatus::Loaded;
        };
        let state = self.images().get(image).cloned();
        match state {
            Some(ImageState::Done(ImageCheck::Present)) => LoadStatus::Loaded,
            Some(ImageState::Done(ImageCheck::Missing(why))) => {
                LoadStatus::Failed(PythonTrace::message(why))
            }
            Some(ImageState::Checking) => LoadStatus::Loading,
            None => {
                self.start(image);
                LoadStatus::Loading
            }
        }
    }

    /// Called after a registration: re-check the image unless it is known to exist (it may
    /// have been pushed since a failed check).
    pub(crate) fn registered(self: &Arc<Self>, doc: &Value) {
        if let Some(image) = self.image_to_check(doc) {
            let known = matches!(
                self.images().get(image),
                Some(ImageState::Done(ImageCheck::Present) | ImageState::Checking)
            );
            if !known {
                self.start(image);
            }
        }
    }

    /// A load error when the document names Python-executable files the store lacks.
    fn missing_pex_files(&self, deployment: &str, doc: &Value) -> Option<LoadStatus> {
        let blobs = self.blobs.as_ref()?;
        if document::image(doc).is_some() {
            return None;
        }
        let tag = doc.pointer("/pex_metadata/pex_tag")?.as_str()?;
        let missing: Vec<&str> = pex_tag_files(tag)
            .into_iter()
            .filter(|name| !matches!(blobs.lookup(deployment, name), Ok(Some(_))))
            .collect();
        (!missing.is_empty()).then(|| {
            LoadStatus::Failed(PythonTrace::message(format!(
                "the Python executable files {} of pex_tag {tag:?} were never uploaded to this \
                 server; deploy again with `dagster-deploy serverless deploy-python-executable`",
                missing.join(", ")
            )))
        })
    }

    fn image_to_check<'a>(&self, doc: &'a Value) -> Option<&'a str> {
        // Python-executable deploys (pex_metadata, no image) have nothing to check yet.
        self.access.as_ref()?;
        document::image(doc)
    }

    fn start(self: &Arc<Self>, image: &str) {
        let Some(access) = self.access.clone() else {
            return;
        };
        {
            let mut images = self.images();
            if images.len() >= MAX_CACHED_IMAGES {
                images.retain(|_, state| matches!(state, ImageState::Checking));
            }
            if images.len() >= MAX_CACHED_IMAGES {
                return;
            }
            images.insert(image.to_string(), ImageState::Checking);
        }
        let this = Arc::clone(self);
        let image = image.to_string();
        tokio::spawn(async move {
            let result =
                registry::check_trusted_image(&this.client, &access, &this.trusted, &image).await;
            if let ImageCheck::Missing(why) = &result {
                tracing::warn!(image = %image, "image check failed: {why}");
            }
            this.images().insert(image, ImageState::Done(result));
        });
    }

    fn images(&self) -> std::sync::MutexGuard<'_, HashMap<String, ImageState>> {
        self.images.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_image_cache_stays_bounded() {
        let checker = LoadChecker::new(Some(RegistryAccess::default()), Vec::new(), None);
        for i in 0..MAX_CACHED_IMAGES + 200 {
            // Untrusted registries: each check ends at once, without a connection.
            checker.registered(&serde_json::json!({ "image": format!("10.0.0.1:5000/app:{i}") }));
            tokio::task::yield_now().await;
            assert!(checker.images().len() <= MAX_CACHED_IMAGES);
        }
        let loc = StoredLocation {
            name: "a".into(),
            document: serde_json::json!({ "image": "10.0.0.1:5000/app:new" }),
            revision_id: 1,
            updated_at_ms: 0,
            damaged: None,
        };
        // A new image is still checked once room is made.
        for _ in 0..100 {
            if let LoadStatus::Failed(why) = checker.status("prod", &loc) {
                assert!(why.message.contains("does not check images in"), "{why:?}");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the new image was never checked");
    }
}
