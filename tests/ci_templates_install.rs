//! `ci-templates/install.sh` installs a checked binary of the version asked for and nothing
//! else: served from a local release folder, a bad checksum, an archive of another version or
//! a missing release install nothing.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};
use support::templates::root;

const BIN: &str = env!("CARGO_BIN_EXE_dagster-deploy");

/// A tiny HTTP server for the files of one folder (GET only), stopped when dropped.
struct FileServer {
    url: String,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileServer {
    fn start(dir: PathBuf) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    serve(&dir, stream);
                }
            }
        });
        FileServer {
            url: format!("http://{addr}"),
            stop,
            addr,
            thread: Some(thread),
        }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(dir: &Path, mut stream: TcpStream) {
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let file = dir.join(path.trim_start_matches('/'));
    let (status, body) = match std::fs::read(&file) {
        Ok(body) if !path.contains("..") => ("200 OK", body),
        _ => ("404 Not Found", b"not found".to_vec()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}

/// The release target install.sh detects on this machine.
fn this_target() -> String {
    let os = match std::env::consts::OS {
        "linux" => "unknown-linux-musl",
        "macos" => "apple-darwin",
        other => panic!("no release target for {other}"),
    };
    format!("{}-{os}", std::env::consts::ARCH)
}

/// A release folder `v<version>/` holding the test binary as the archive for this machine.
fn release(dir: &Path, version: &str, sha256_override: Option<&str>) -> String {
    let target = this_target();
    let archive = format!("dagster-deploy-{target}.tar.gz");
    let release_dir = dir.join(format!("v{version}"));
    let staging = dir.join("staging");
    std::fs::create_dir_all(&release_dir).expect("mkdir");
    std::fs::create_dir_all(&staging).expect("mkdir");
    std::fs::copy(BIN, staging.join("dagster-deploy")).expect("copy the binary");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(release_dir.join(&archive))
        .arg("-C")
        .arg(&staging)
        .arg("dagster-deploy")
        .status()
        .expect("run tar");
    assert!(status.success(), "tar failed");
    let bytes = std::fs::read(release_dir.join(&archive)).expect("archive");
    let digest = format!("{:x}", Sha256::digest(&bytes));
    let line = format!("{}  {archive}\n", sha256_override.unwrap_or(&digest));
    std::fs::write(release_dir.join(format!("{archive}.sha256")), line).expect("write");
    archive
}

/// Runs install.sh for `version` against `server`, installing into `bin_dir`.
fn install(server: &FileServer, version: &str, bin_dir: &Path) -> std::process::Output {
    Command::new("sh")
        .arg(root().join("ci-templates/install.sh"))
        .env("DAGSTER_DEPLOY_VERSION", version)
        .env("DAGSTER_DEPLOY_DOWNLOAD_URL", &server.url)
        .env("DAGSTER_DEPLOY_INSTALL_DIR", bin_dir)
        .env_remove("DAGSTER_DEPLOY_TARGET")
        .output()
        .expect("run install.sh")
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[test]
fn install_sh_installs_the_checked_binary_of_the_version_asked_for() {
    let tmp = tempfile::tempdir().expect("tempdir");
    release(tmp.path(), VERSION, None);
    let server = FileServer::start(tmp.path().to_path_buf());
    let bin_dir = tmp.path().join("bin");
    let out = install(&server, &format!("v{VERSION}"), &bin_dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let installed = bin_dir.join("dagster-deploy");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        installed.to_string_lossy()
    );
    let version = Command::new(&installed)
        .arg("--version")
        .output()
        .expect("runs");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("dagster-deploy {VERSION}")
    );
}

#[test]
fn install_sh_refuses_a_bad_checksum_and_installs_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let archive = release(tmp.path(), VERSION, Some(&"0".repeat(64)));
    let server = FileServer::start(tmp.path().to_path_buf());
    let bin_dir = tmp.path().join("bin");
    let out = install(&server, VERSION, &bin_dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("checksum mismatch for {archive}")),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was installed"), "{stderr}");
    assert!(!bin_dir.join("dagster-deploy").exists());
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
}

#[test]
fn install_sh_refuses_an_archive_of_another_version_or_a_missing_release() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The test binary, published as if it were 9.9.9.
    release(tmp.path(), "9.9.9", None);
    let server = FileServer::start(tmp.path().to_path_buf());
    let bin_dir = tmp.path().join("bin");
    let out = install(&server, "9.9.9", &bin_dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("asked for 9.9.9"), "{stderr}");
    assert!(!bin_dir.join("dagster-deploy").exists());

    let out = install(&server, "1.2.3", &bin_dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("cannot download"), "{stderr}");
    assert!(!bin_dir.join("dagster-deploy").exists());
}
