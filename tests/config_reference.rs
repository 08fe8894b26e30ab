//! The config corpus against the reference `dagster-cloud` CLI itself: every fixture we accept
//! it accepts and every one we reject it rejects (deliberate differences are named in the
//! fixture file names), and its merged locations equal our pinned ones.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python of the venv holding the reference CLI (`DAGSTER_CLOUD_REFERENCE` points at its
/// `dagster-cloud` executable; scripts/test.sh sets it).
fn reference_python() -> Option<PathBuf> {
    let cli = std::env::var_os("DAGSTER_CLOUD_REFERENCE")?;
    Some(Path::new(&cli).parent()?.join("python"))
}

#[cfg_attr(
    not(ci),
    ignore = "needs the reference dagster-cloud CLI (scripts/reference-cli.sh)"
)]
#[test]
fn corpus_agrees_with_the_reference_cli() {
    let Some(python) = reference_python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "DAGSTER_CLOUD_REFERENCE is not set: CI must run the reference comparison (scripts/test.sh sets it)"
        );
        eprintln!(
            "SKIPPED: set DAGSTER_CLOUD_REFERENCE to compare the config corpus with the reference CLI"
        );
        return;
    };
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/reference_check.py");
    let out = Command::new(&python)
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "reference disagrees with the corpus:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It really looked at the corpus.
    assert!(stdout.matches("ACCEPT").count() >= 20, "{stdout}");
    assert!(stdout.matches("REJECT").count() >= 50, "{stdout}");
}
