//! CI context: which CI (if any) we run in, and the facts it gives us.

pub mod context;
pub mod fan_out;
pub mod pull_request;
pub mod repo_facts;
pub mod report;
pub mod state;
