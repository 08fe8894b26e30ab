//! dagster-deploy: plan, build, push and register Dagster code locations from a monorepo.
//!
//! The flow is one pass (docs/architecture.md): `config` → `changes` → `plan` → `build` or
//! `pex` → `deploy`, which registers with a deployment API (`api`) or the local store.
//! The binary (`src/main.rs`) only parses arguments, calls into this library and renders errors.

pub mod api;
pub mod build;
pub mod changes;
pub mod child_process;
pub mod ci;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dagster;
pub mod deploy;
pub mod error;
pub mod logging;
pub mod output;
pub mod pex;
pub mod plan;
pub mod printer;
pub mod progress;
pub mod protocol;
pub mod python_tools;
pub mod registry;
pub mod server;
