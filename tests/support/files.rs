//! Fixture trees on disk.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One thing in a fixture tree.
pub enum Node<'a> {
    File(&'a str, &'a str),
    /// A file with explicit permission bits.
    Mode(&'a str, &'a str, u32),
    Dir(&'a str, u32),
    Link(&'a str, &'a str),
}

/// Creates the nodes under `root` (parents as needed).
pub fn write_tree(root: &Path, nodes: &[Node]) {
    for node in nodes {
        match node {
            Node::File(path, content) => write(root, path, content, None),
            Node::Mode(path, content, mode) => write(root, path, content, Some(*mode)),
            Node::Dir(path, mode) => {
                let p = root.join(path);
                std::fs::create_dir_all(&p).unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
            }
            Node::Link(path, target) => {
                let p = root.join(path);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(target, &p).unwrap();
            }
        }
    }
}

pub fn write(root: &Path, path: &str, content: &str, mode: Option<u32>) {
    let p: PathBuf = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, content).unwrap();
    if let Some(mode) = mode {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// Entry names of a tar archive, in order, with a type letter: `d`, `f`, `l -> target`.
pub fn tar_listing(bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let header = e.header();
            let mode = header.mode().unwrap() & 0o7777;
            match header.entry_type() {
                tar::EntryType::Directory => format!("{path} d {mode:o}"),
                tar::EntryType::Symlink => {
                    let target = e.link_name().unwrap().unwrap();
                    format!("{path} l {}", target.display())
                }
                tar::EntryType::Regular => format!("{path} f {mode:o}"),
                other => format!("{path} {other:?}"),
            }
        })
        .collect()
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
