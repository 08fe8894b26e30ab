//! A large repository (100,000 files, 10,000 commits) to measure the changes module against
//! `git` itself. Ignored by default (it takes a while to build); run with
//! `cargo test --release --test changes_perf -- --ignored --nocapture`.
//! Timings are printed, not asserted; the results are checked against `git diff`.

mod support;

use std::io::Write;
use std::process::Stdio;
use std::time::Instant;

use dagster_deploy::changes::{Head, Repo, content_key};
use globset::GlobSet;
use support::{git_cmd, git_in};

const LOCATIONS: usize = 200;
const SUBDIRS: usize = 10;
const FILES: usize = 50;
const COMMITS: usize = 10_000;

/// A tiny deterministic generator (no dependency needed).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

fn path(l: usize, s: usize, f: usize) -> String {
    format!("locations/loc{l:03}/pkg/sub{s}/file{f:02}.py")
}

fn fast_import_stream() -> Vec<u8> {
    let mut out = Vec::new();
    let mut rng = Lcg(42);
    let mut mark = 0usize;
    writeln!(out, "commit refs/heads/main\nmark :{}", {
        mark += 1;
        mark
    })
    .unwrap();
    let msg = "initial";
    write!(
        out,
        "committer T <t@example.com> 1700000000 +0000\ndata {}\n{msg}\n",
        msg.len()
    )
    .unwrap();
    for l in 0..LOCATIONS {
        for s in 0..SUBDIRS {
            for f in 0..FILES {
                let content = format!("# {l} {s} {f}\nx = {}\n", l * 1000 + s * 100 + f);
                write!(
                    out,
                    "M 100644 inline {}\ndata {}\n{content}\n",
                    path(l, s, f),
                    content.len()
                )
                .unwrap();
            }
        }
    }
    for i in 0..COMMITS {
        mark += 1;
        let msg = format!("change {i}");
        write!(
            out,
            "commit refs/heads/main\nmark :{mark}\ncommitter T <t@example.com> {} +0000\ndata {}\n{msg}\n",
            1700000000 + i + 1,
            msg.len()
        )
        .unwrap();
        for _ in 0..3 {
            let p = path(rng.next(LOCATIONS), rng.next(SUBDIRS), rng.next(FILES));
            let content = format!("# edit {i}\n");
            write!(
                out,
                "M 100644 inline {p}\ndata {}\n{content}\n",
                content.len()
            )
            .unwrap();
        }
    }
    out
}

fn time<T>(label: &str, runs: usize, mut f: impl FnMut() -> T) -> T {
    let mut best = f64::MAX;
    let mut result = None;
    for _ in 0..runs {
        let start = Instant::now();
        result = Some(f());
        best = best.min(start.elapsed().as_secs_f64() * 1000.0);
    }
    println!("{label:<66} {best:>9.2} ms (best of {runs})");
    result.expect("at least one run")
}

#[test]
#[ignore = "builds a 100,000-file repository; run explicitly with --release"]
fn large_repository() {
    // PERF_REPO=/some/dir keeps the repository there (and reuses it) between runs.
    let dir = tempfile::tempdir().unwrap();
    let kept = std::env::var_os("PERF_REPO").map(std::path::PathBuf::from);
    let root = kept.as_deref().unwrap_or(dir.path());
    if root.join(".git").exists() {
        git_in(root, &["reset", "-q", "--hard", "main"]);
        run(root);
        return;
    }
    std::fs::create_dir_all(root).unwrap();
    git_in(root, &["init", "-q", "-b", "main"]);
    let start = Instant::now();
    let mut child = git_cmd(root)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&fast_import_stream())
        .unwrap();
    assert!(child.wait().unwrap().success());
    git_in(root, &["reset", "-q", "--hard", "main"]);
    git_in(root, &["gc", "-q"]);
    git_in(root, &["status", "-s"]); // refresh the index stat data, as a checkout would leave it
    println!(
        "built the repository in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    run(root);
}

fn run(root: &std::path::Path) {
    let repo = Repo::discover(root).unwrap();
    let head = repo.head_commit().unwrap();
    for back in [1usize, 100, 5000] {
        let base_rev = format!("HEAD~{back}");
        let base = repo.resolve(&base_rev).unwrap();
        let git_out = time(&format!("git diff --name-only {base_rev} HEAD"), 5, || {
            git_in(
                root,
                &["diff", "--no-renames", "--name-only", &base_rev, "HEAD"],
            )
        });
        // A fresh Repo per run: no warm object cache, as in one `plan` process.
        let ours = time(
            &format!("open + changed_paths({base_rev}, HEAD)"),
            5,
            || {
                let repo = Repo::discover(root).unwrap();
                repo.changed_paths(base, &Head::Commit(head)).unwrap()
            },
        );
        let mut expected: Vec<String> = git_out.lines().map(str::to_string).collect();
        expected.sort();
        assert_eq!(ours, expected, "{base_rev}");
    }

    let base = repo.resolve("HEAD~100").unwrap();
    time("git status --porcelain (clean)", 3, || {
        git_in(root, &["status", "--porcelain"])
    });
    let wt_changed = time(
        "open + changed_paths(HEAD~100, work tree) (clean)",
        3,
        || {
            let repo = Repo::discover(root).unwrap();
            repo.changed_paths(base, &Head::WorkTree(head)).unwrap()
        },
    );
    assert_eq!(
        wt_changed,
        repo.changed_paths(base, &Head::Commit(head)).unwrap()
    );

    let inputs: Vec<Vec<String>> = (0..LOCATIONS)
        .map(|l| {
            vec![
                format!("locations/loc{l:03}"),
                "locations/loc000/pkg/sub0".to_string(),
            ]
        })
        .collect();
    let none = GlobSet::empty();
    let keys = time(
        "open + content_key x200 (commit, no ignore globs)",
        5,
        || {
            let repo = Repo::discover(root).unwrap();
            inputs
                .iter()
                .map(|i| content_key(&repo, &Head::Commit(head), i, &none, b"salt").unwrap())
                .collect::<Vec<_>>()
        },
    );
    let wt_keys = time("open + content_key x200 (clean work tree)", 3, || {
        let repo = Repo::discover(root).unwrap();
        inputs
            .iter()
            .map(|i| content_key(&repo, &Head::WorkTree(head), i, &none, b"salt").unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(keys, wt_keys);
    let mut b = globset::GlobSetBuilder::new();
    b.add(globset::Glob::new("**/*.md").unwrap());
    let md = b.build().unwrap();
    let md_keys = time(
        "open + content_key x200 (commit, ignore glob matching nothing)",
        3,
        || {
            let repo = Repo::discover(root).unwrap();
            inputs
                .iter()
                .map(|i| content_key(&repo, &Head::Commit(head), i, &md, b"salt").unwrap())
                .collect::<Vec<_>>()
        },
    );
    assert_eq!(keys, md_keys);

    // A dirty file in one location changes that location's key only.
    std::fs::write(root.join(path(7, 3, 3)), "dirty\n").unwrap();
    let repo = Repo::discover(root).unwrap();
    let dirty_keys: Vec<String> = inputs
        .iter()
        .map(|i| content_key(&repo, &Head::WorkTree(head), i, &none, b"salt").unwrap())
        .collect();
    let differing: Vec<usize> = (0..LOCATIONS)
        .filter(|&l| keys[l] != dirty_keys[l])
        .collect();
    assert_eq!(differing, vec![7]);
}
