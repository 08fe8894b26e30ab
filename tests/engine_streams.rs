//! The engine's progress streams as they arrive over a real connection.
//!
//! A fake engine on TCP answers with HTTP/1.1 chunked bodies cut where a socket read may cut
//! them. The case that matters: the last JSON line arrives whole and its `\r\n` in a later
//! read. bollard 0.21 then ends the stream with "bytes remaining on stream" although every
//! message was delivered; a completed push must not fail for it (it once failed CI).

use std::sync::Arc;

use dagster_deploy::build::engine::{Engine, ProgressEvent};
use dagster_deploy::build::{DockerEngine, ImageRef};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A fake engine: `/version` for the handshake; pushes answer with `push_chunks`, pulls with
/// `pull_chunks`, each chunk written and flushed on its own. Returns the port and a counter
/// of push requests.
async fn fake_engine(
    push_chunks: Vec<String>,
    pull_chunks: Vec<String>,
) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let pushes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = pushes.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (push, pull) = (push_chunks.clone(), pull_chunks.clone());
            let counter = counter.clone();
            tokio::spawn(async move { answer(socket, &push, &pull, &counter).await });
        }
    });
    (port, pushes)
}

async fn answer(
    mut socket: TcpStream,
    push: &[String],
    pull: &[String],
    pushes: &std::sync::atomic::AtomicUsize,
) {
    loop {
        let Some(head) = read_head(&mut socket).await else {
            return;
        };
        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
        let chunks: Vec<String> = if path.contains("/version") {
            vec![r#"{"Version":"26.1.5","ApiVersion":"1.45","Os":"linux","Arch":"amd64"}"#.into()]
        } else if path.contains("/push") {
            pushes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            push.to_vec()
        } else if path.contains("/images/create") {
            pull.to_vec()
        } else {
            vec!["{}".into()]
        };
        let header = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        if socket.write_all(header.as_bytes()).await.is_err() {
            return;
        }
        for chunk in chunks {
            let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
            if socket.write_all(framed.as_bytes()).await.is_err() {
                return;
            }
            let _ = socket.flush().await;
            // Separate reads on the client side.
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
        if socket.write_all(b"0\r\n\r\n").await.is_err() {
            return;
        }
    }
}

/// The request head; bodies of the requests used here are empty.
async fn read_head(socket: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if socket.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

const DIGEST: &str = "sha256:e5fd97e5dd3a508d91b8dd3a64e58603cb27f58dd7ae16b0f427cb3e24eb84ed";

fn push_lines() -> String {
    format!(
        "{{\"status\":\"The push refers to repository [127.0.0.1:5999/app]\"}}\r\n\
         {{\"status\":\"Pushed\",\"progressDetail\":{{}},\"id\":\"abc\"}}\r\n\
         {{\"status\":\"v1: digest: {DIGEST} size: 1571\"}}\r\n\
         {{\"progressDetail\":{{}},\"aux\":{{\"Tag\":\"v1\",\"Digest\":\"{DIGEST}\",\"Size\":1571}}}}"
    )
}

async fn engine(port: u16) -> DockerEngine {
    DockerEngine::connect_to(Some(&format!("tcp://127.0.0.1:{port}")))
        .await
        .expect("the fake engine answers the handshake")
}

fn lines() -> (
    Arc<std::sync::Mutex<Vec<String>>>,
    impl Fn(ProgressEvent<'_>) + Send + Sync,
) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let progress = move |event: ProgressEvent<'_>| {
        if let Some(line) = event.line()
            && let Ok(mut seen) = sink.lock()
        {
            seen.push(line.to_string());
        }
    };
    (seen, progress)
}

#[tokio::test]
async fn a_push_whose_last_line_ends_in_a_later_read_succeeds_with_its_digest() {
    let (port, pushes) = fake_engine(vec![push_lines(), "\r\n".into()], Vec::new()).await;
    let engine = engine(port).await;
    let image = ImageRef::parse("127.0.0.1:5999/app:v1").expect("reference");
    let (seen, progress) = lines();
    let pushed = engine
        .push_image(&image, None, &progress)
        .await
        .expect("a push whose every message arrived is a success");
    assert_eq!(pushed.digest.as_deref(), Some(DIGEST));
    assert_eq!(
        pushes.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "nothing to push again"
    );
    assert!(
        seen.lock()
            .expect("lines")
            .iter()
            .any(|l| l.contains("digest:")),
        "the digest line is shown"
    );
}

#[tokio::test]
async fn a_push_cut_off_before_its_digest_is_pushed_again_once_then_fails() {
    // The stream ends inside a JSON line and no digest was reported: the push may not have
    // finished, so it is tried again; the same cut again is a failure that says so.
    let cut =
        "{\"status\":\"The push refers to repository [127.0.0.1:5999/app]\"}\r\n{\"status\":\"Pre"
            .to_string();
    let (port, pushes) = fake_engine(vec![cut], Vec::new()).await;
    let engine = engine(port).await;
    let image = ImageRef::parse("127.0.0.1:5999/app:v1").expect("reference");
    let (_, progress) = lines();
    let error = engine
        .push_image(&image, None, &progress)
        .await
        .expect_err("a push that never reported its digest failed");
    assert_eq!(pushes.load(std::sync::atomic::Ordering::SeqCst), 2);
    let message = error.to_string();
    assert!(message.contains("127.0.0.1:5999/app:v1"), "{message}");
    assert!(message.contains("ended early"), "{message}");
}

#[tokio::test]
async fn a_pull_whose_last_line_ends_in_a_later_read_succeeds() {
    let pull = "{\"status\":\"Pulling from app\",\"id\":\"v1\"}\r\n\
                {\"status\":\"Digest: sha256:abc\"}\r\n\
                {\"status\":\"Status: Downloaded newer image for 127.0.0.1:5999/app:v1\"}"
        .to_string();
    let (port, _) = fake_engine(Vec::new(), vec![pull, "\r\n".into()]).await;
    let engine = engine(port).await;
    let image = ImageRef::parse("127.0.0.1:5999/app:v1").expect("reference");
    let (_, progress) = lines();
    let found = engine
        .pull_image(&image, None, &progress)
        .await
        .expect("a pull whose every message arrived is a success");
    assert!(found);
}
