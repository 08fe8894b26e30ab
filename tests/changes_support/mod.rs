//! Kept for test files written before `support` absorbed this module: use `mod support;`.
#![allow(unused_imports)]

#[path = "../support/mod.rs"]
mod support;
pub use support::*;
