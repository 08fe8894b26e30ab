//! dagster-deploy: plan, build, push and register Dagster code locations from a monorepo.
//!
//! The flow is one pass (see DESIGN.md): `config` → `changes` → `plan` → build → api.
//! The binary (`src/main.rs`) only parses arguments, calls into this library and renders errors.

pub mod api;
pub mod build;
pub mod changes;
pub mod ci;
pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod logging;
pub mod output;
pub mod pex;
pub mod plan;
pub mod progress;
pub mod registry;
pub mod server;
