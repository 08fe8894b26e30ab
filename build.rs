//! Sets the `ci` cfg when `CI` is set (and not `false`) at build time. Integration tests that
//! need a real component (Docker, the registry, the reference CLI, ...) are marked
//! `#[cfg_attr(not(ci), ignore = "needs ...")]`: a plain `cargo test` lists them as ignored
//! instead of passing without running, and under CI they run (and fail when it is missing).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(ci)");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-changed=build.rs");
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    if ci {
        println!("cargo::rustc-cfg=ci");
    }
}
