//! The deployment API client: the Dagster+ GraphQL protocol (docs/protocol.md) as the reference
//! `dagster-cloud` CLI speaks it — settings, URLs and headers, retries and maintenance waits,
//! errors inside 200 answers, location documents, waiting for locations to load. The deploy
//! workflow over it lives in the `deploy` module.

pub mod client;
pub mod document;
mod error;
pub mod ops;
mod secret;
pub mod settings;
pub mod wait;

pub use client::{Client, ClientOptions};
pub use error::{ApiError, ChainLink, LoadFailure};
pub use secret::{ApiToken, redact};
pub use settings::{Settings, SettingsFlags};
