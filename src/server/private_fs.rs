//! The data directory holds token hashes, the URL-signing key and users' code: only the
//! server's user may read it. Folders are 0700 and files 0600 (on Unix), whatever the umask.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Creates `dir` (and missing parents, 0700 too) if needed and makes it 0700.
pub(crate) fn dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    restrict(dir, 0o700);
    Ok(())
}

/// Options that create a file 0600.
pub(crate) fn file_options() -> OpenOptions {
    let mut opts = File::options();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts
}

/// Makes an existing file 0600 (files made by others, e.g. SQLite's); absent is fine.
pub(crate) fn restrict_file(path: &Path) {
    restrict(path, 0o600);
}

/// Sets `mode` on what exists at `path`. A failure (a folder of another user, a read-only
/// file system) is logged, not fatal: reading such a store must keep working.
#[cfg(unix)]
fn restrict(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if meta.permissions().mode() & 0o777 == mode {
        return;
    }
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        tracing::warn!(
            "cannot make {} private (mode {mode:o}): {e}",
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) {}
