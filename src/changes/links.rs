//! Following symlinks inside the repository, as the filesystem (and Docker's CLI, for a build
//! context) would: a path names what its links lead to.

use std::path::Path;

use super::FileSource;
use super::paths::from_bytes;

/// Links chained deeper than this are treated as a loop (Linux allows 40; 8 is plenty here).
const MAX_HOPS: usize = 40;

/// A path with every symlink on it followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Repo-relative target (`""` is the root). Parts that do not exist are kept as written.
    pub path: String,
    /// The repo-relative links passed on the way, in order: retargeting one of them changes
    /// what the path names, so they matter as much as the target.
    pub links: Vec<String>,
}

/// Why a path cannot be followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresolvable {
    /// It, or a link on it, leads out of the repository.
    Outside,
    /// Its links loop.
    Loop,
}

/// Follows `path` (repo-relative, `/`-separated, `.`/`..` allowed) through `src` one
/// component at a time, so `..` after a link climbs from the link's target.
pub(super) fn resolve(
    src: &(impl FileSource + ?Sized),
    path: &str,
) -> Result<Resolved, Unresolvable> {
    let mut pending: Vec<String> = segments(path).rev().map(str::to_string).collect();
    let mut done: Vec<String> = Vec::new();
    let mut links = Vec::new();
    while let Some(segment) = pending.pop() {
        match segment.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop().ok_or(Unresolvable::Outside)?;
                continue;
            }
            _ => {}
        }
        done.push(segment);
        let here = done.join("/");
        let Some(target) = src.link_target(&here) else {
            continue;
        };
        if links.len() == MAX_HOPS {
            return Err(Unresolvable::Loop);
        }
        links.push(here);
        done.pop();
        let target = if target.starts_with('/') {
            // An absolute target counts when it points into the work tree.
            done.clear();
            let root = src.root().ok_or(Unresolvable::Outside)?;
            let rel = Path::new(&target)
                .strip_prefix(root)
                .map_err(|_| Unresolvable::Outside)?;
            from_bytes(rel.as_os_str().as_encoded_bytes())
        } else {
            target
        };
        pending.extend(segments(&target).rev().map(str::to_string));
    }
    Ok(Resolved {
        path: done.join("/"),
        links,
    })
}

fn segments(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty() && *s != ".")
}
