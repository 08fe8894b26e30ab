//! The deploy workflow every command shares: where a run deploys (`route`), what each
//! location is compared with (`select`), planning and building (`prepare`), registering and
//! waiting (`register`, `wait`), a build session's deploy (`session_deploy`), the
//! Python-executable flow (`python`), what CI is told
//! (`feedback`) and `deploy` itself (`flow`), all over one [`Deployment`] trait implemented by
//! the deployment API and by the local store. Commands map their arguments onto these and
//! render the results (docs/architecture.md).

pub mod dry_run;
pub mod feedback;
pub mod flow;
pub mod prepare;
pub mod python;
pub mod register;
pub mod route;
pub mod select;
pub mod session;
pub mod session_deploy;
pub mod target;
pub mod wait;

pub use flow::{DeployRequest, Deployed, Outcome, deploy};
pub use register::{
    LocationReport, RegisterOptions, RegisterReport, RegisterStatus, register, register_documents,
};
pub use target::{Deployment, LOCAL_STORE_DIR, LocalStore, Remote};
pub use wait::{Heartbeat, WaitPolicy};
