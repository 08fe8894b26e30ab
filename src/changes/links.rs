//! Following symlinks inside the repository, as the filesystem (and Docker's CLI, for a build
//! context) would: a path names what its links lead to.

use std::borrow::Cow;
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
    // Segments still to walk: those of link targets met (reversed, walked first), then the
    // rest of `path` (borrowed: most paths pass no link, and then nothing is copied).
    let mut pending: Vec<String> = Vec::new();
    let mut rest = segments(path);
    // The path resolved so far, and where each of its components starts.
    let mut done = String::with_capacity(path.len());
    let mut starts: Vec<usize> = Vec::new();
    let mut links = Vec::new();
    loop {
        let segment: Cow<str> = match pending.pop() {
            Some(s) => Cow::Owned(s),
            None => match rest.next() {
                Some(s) => Cow::Borrowed(s),
                None => break,
            },
        };
        match &*segment {
            "" | "." => continue,
            ".." => {
                let start = starts.pop().ok_or(Unresolvable::Outside)?;
                done.truncate(start.saturating_sub(1));
                continue;
            }
            _ => {}
        }
        let start = if done.is_empty() { 0 } else { done.len() + 1 };
        if !done.is_empty() {
            done.push('/');
        }
        done.push_str(&segment);
        let Some(target) = src.link_target(&done) else {
            starts.push(start);
            continue;
        };
        if links.len() == MAX_HOPS {
            return Err(Unresolvable::Loop);
        }
        links.push(done.clone());
        done.truncate(start.saturating_sub(1));
        let target = if target.starts_with('/') {
            // An absolute target counts when it points into the work tree.
            done.clear();
            starts.clear();
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
    Ok(Resolved { path: done, links })
}

fn segments(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty() && *s != ".")
}
