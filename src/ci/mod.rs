//! CI context: which CI (if any) we run in, and the facts it gives us.

pub mod context;
pub mod repo_facts;
pub mod state;
