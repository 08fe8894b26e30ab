//! Streaming a large context keeps memory flat. Alone in its own test binary, so the process's
//! peak memory is this test's.

use dagster_deploy::build::{BuildContext, ContextOptions};
use futures_util::StreamExt;

/// Peak resident memory of this process so far, in bytes (Linux `VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test]
async fn half_a_gigabyte_context_streams_in_little_memory() {
    const SIZE: u64 = 512 * 1024 * 1024;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
    // Sparse: no disk space needed, but every byte is read and sent.
    let big = std::fs::File::create(tmp.path().join("big.bin")).unwrap();
    big.set_len(SIZE).unwrap();
    drop(big);

    let ctx = BuildContext::prepare(&ContextOptions::new("big", tmp.path())).unwrap();
    assert_eq!(ctx.content_size(), SIZE + 22);
    let before = peak_rss();
    let (mut body, producer) = ctx.stream();
    let mut total = 0u64;
    while let Some(chunk) = body.next().await {
        total += chunk.unwrap().len() as u64;
    }
    assert_eq!(producer.finish().await.unwrap(), total);
    assert!(total > SIZE, "the whole file was sent ({total} bytes)");
    let grown = peak_rss().saturating_sub(before);
    assert!(
        grown < 32 * 1024 * 1024,
        "streaming {SIZE} bytes raised peak memory by {grown} bytes"
    );
}
