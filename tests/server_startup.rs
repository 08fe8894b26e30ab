//! Starting and stopping: the data directory lock, unusable directories, restarts.

use std::net::SocketAddr;

use dagster_deploy::server::{self, ServeOptions, ServerError};

fn options(dir: &std::path::Path) -> ServeOptions {
    let mut opts = ServeOptions::new(SocketAddr::from(([127, 0, 0, 1], 0)), dir);
    opts.registry = None;
    opts
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = server::start(options(dir.path())).await.unwrap();
    let err = match server::start(options(dir.path())).await {
        Err(e) => e,
        Ok(_) => panic!("two servers share a data directory"),
    };
    assert!(matches!(err, ServerError::DataDirInUse { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "the data directory {} is already used by another running dagster-deploy server \
             (it holds {}); stop that server or choose another data directory",
            dir.path().display(),
            dir.path().join(server::LOCK_FILE).display()
        )
    );
    // Once the first stops, the directory is free again.
    first.shutdown().await.unwrap();
    let again = server::start(options(dir.path())).await.unwrap();
    again.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_data_dir_that_is_a_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = match server::start(options(&file)).await {
        Err(e) => e,
        Ok(_) => panic!("started on a file"),
    };
    assert!(matches!(err, ServerError::DataDir { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "cannot use {} as the server's data directory",
            file.display()
        )),
        "{err}"
    );
}

#[tokio::test]
async fn an_unwritable_data_dir_is_a_clear_error() {
    // sysfs refuses new directories even to root, so this works whatever user runs the tests.
    let dir = std::path::Path::new("/sys/dagster-deploy-server-test");
    let err = match server::start(options(dir)).await {
        Err(e) => e,
        Ok(_) => panic!("started in /sys"),
    };
    assert!(
        matches!(err, ServerError::ReadOnlyDataDir { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the data directory /sys/dagster-deploy-server-test is not writable (read-only or no \
         permission); the server must write its database there, so choose a writable directory"
    );
}

#[tokio::test]
async fn a_busy_port_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut opts = options(dir.path());
    opts.listen = taken.local_addr().unwrap();
    let err = match server::start(opts).await {
        Err(e) => e,
        Ok(_) => panic!("bound a taken port"),
    };
    assert!(matches!(err, ServerError::Bind { .. }), "{err:?}");
}

#[tokio::test]
async fn serve_stops_when_its_shutdown_future_completes() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut opts = options(dir.path());
    opts.listen = SocketAddr::from(([127, 0, 0, 1], port));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(opts, async {
        let _ = rx.await;
    }));
    // Wait until it accepts connections; from then on it holds the data directory.
    let mut up = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(up, "serve never listened");
    assert!(matches!(
        server::start(options(dir.path())).await,
        Err(ServerError::DataDirInUse { .. })
    ));
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    // Released after.
    server::start(options(dir.path()))
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
}
