//! CI context: which CI (if any) we run in, and the facts it gives us.

mod comment_thread;
pub mod context;
pub mod fan_out;
pub mod github;
pub mod gitlab;
pub mod pull_request;
pub mod repo_facts;
pub mod report;
pub mod state;
