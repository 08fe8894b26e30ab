//! The Plan: each location, its action (build / redeploy / skip) and why.
