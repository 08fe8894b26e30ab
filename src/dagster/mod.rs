//! Open-source Dagster, as `serve` uses it: installing `dagster` and `dagster-webserver` on
//! first use (`install`), running the webserver and daemon of a deployment as supervised child
//! processes (`ui`, `process`), and the webserver's GraphQL calls (`graphql`).
//!
//! The code servers themselves belong to the agent; this module only runs what reads the
//! workspace file the agent publishes (`server::workspace`).

pub mod graphql;
pub mod install;
pub mod process;
pub mod ui;

pub use install::{DAGSTER_VERSION, Install};
