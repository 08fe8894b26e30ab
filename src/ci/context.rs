//! Decide the execution context once, from the environment.
