//! Child processes that stop when told, for the Dagster processes `serve` runs (code servers,
//! webserver, daemon): each leads its own process group, starts with default signal
//! dispositions, and is stopped through its group.
//!
//! Why (docs/research/dagster-code-servers.md §8): Dagster maps SIGTERM to SIGINT's handler, so
//! a child that inherits SIGINT ignored (serve started as a background job of a script) never
//! stops on SIGTERM; Rust ignores SIGPIPE, and an ignored disposition survives exec. Dagster's
//! processes start children of their own, so signals go to the group, not one pid.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes `cmd`'s child lead a new process group and reset the signals it would inherit
/// ignored.
pub fn own_group_default_signals(cmd: &mut Command) {
    cmd.process_group(0);
    // SAFETY: between fork and exec only async-signal-safe calls are allowed; signal(2) is one.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT, libc::SIGPIPE] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        });
    }
}

/// Sends `sig` to the process group `leader` leads (nothing for pids 0 and 1).
pub fn signal_group(leader: i32, sig: libc::c_int) {
    if leader > 1 {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
        unsafe {
            libc::kill(-leader, sig);
        }
    }
}
