//! Raw Engine API requests for what bollard does not expose: a `/build` whose session we serve
//! ourselves, and the `/session` upgrade. One connection per request, driven by the caller's
//! task (nothing is spawned), so dropping the caller's future closes it.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::http;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// Where the engine listens, and the API version path every request starts with.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    address: Address,
    /// `/v1.41`.
    prefix: String,
}

#[derive(Debug, Clone)]
enum Address {
    Unix(PathBuf),
    Tcp(String),
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

impl Endpoint {
    /// `unix:///path` or `tcp://host:port` / `http://host:port` (TLS engines are not supported
    /// for BuildKit builds: `None`), speaking API `version` (`1.41`).
    pub(crate) fn parse(host: &str, version: &str) -> Option<Endpoint> {
        let address = if let Some(path) = host.strip_prefix("unix://") {
            Address::Unix(PathBuf::from(path))
        } else {
            let rest = host
                .strip_prefix("tcp://")
                .or_else(|| host.strip_prefix("http://"))?;
            Address::Tcp(rest.trim_end_matches('/').to_string())
        };
        Some(Endpoint {
            address,
            prefix: format!("/v{version}"),
        })
    }

    /// A request for `path` (with its query) under the API version.
    pub(crate) fn request(&self, method: &str, path: &str) -> http::request::Builder {
        let host = match &self.address {
            Address::Unix(_) => "docker",
            Address::Tcp(host) => host,
        };
        http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header("Host", host)
    }

    async fn connect(&self) -> std::io::Result<Box<dyn Io>> {
        Ok(match &self.address {
            Address::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
            Address::Tcp(host) => Box::new(tokio::net::TcpStream::connect(host).await?),
        })
    }
}

/// A client connection's work (reading and writing), polled by [`drive`].
pub(crate) type Connection = Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>>;

/// Sends `request` on a new connection: the response head, and the connection's future, which
/// must be polled (see [`drive`]) for the body to arrive.
pub(crate) async fn send<B>(
    endpoint: &Endpoint,
    request: http::Request<B>,
) -> Result<(http::Response<Incoming>, Connection), String>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect to the engine: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("engine connection: {e}"))?;
    let mut connection: Connection = Box::pin(connection.with_upgrades());
    let response = drive(&mut connection, sender.send_request(request))
        .await
        .map_err(|e| format!("engine request: {}", crate::registry::error_chain(&e)))?;
    Ok((response, connection))
}

/// Runs `work` while polling `connection`; once the connection ends, `work` alone finishes
/// (what it still needs was already read).
pub(crate) async fn drive<C, W>(connection: &mut C, work: W) -> W::Output
where
    C: Future + Unpin,
    W: Future,
{
    tokio::pin!(work);
    tokio::select! {
        biased;
        out = &mut work => return out,
        _ = connection => {}
    }
    work.await
}

/// Sends an upgrade request and returns the upgraded connection.
pub(crate) async fn upgrade(
    endpoint: &Endpoint,
    request: http::request::Builder,
) -> Result<Upgraded, String> {
    let request = request
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let (mut response, mut connection) = send(endpoint, request).await?;
    if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        let status = response.status();
        let body = read_text(response.into_body(), &mut connection).await;
        return Err(format!("the engine refused the session ({status}): {body}"));
    }
    drive(&mut connection, hyper::upgrade::on(&mut response))
        .await
        .map_err(|e| format!("session upgrade: {e}"))
}

/// The body as text (an error answer), at most 4 KiB.
pub(crate) async fn read_text<C: Future + Unpin>(body: Incoming, connection: &mut C) -> String {
    use http_body_util::BodyExt;
    let collected = drive(connection, body.collect()).await;
    let bytes = collected.map(|c| c.to_bytes()).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).to_string();
    // Engine errors are `{"message": "..."}`.
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or(text)
        .trim()
        .to_string()
}
