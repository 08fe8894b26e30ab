//! Reading the engine's build and push progress streams to the end.
//!
//! The engine answers HTTP 200 and then reports failure as one item of the stream, so a
//! caller that stops at the first item, or ignores items, misses errors. These functions read
//! every item, keep the last lines of output and turn the first error into an `EngineError`
//! with that tail.
//!
//! bollard (0.21) ends a JSON-lines stream with the I/O error "bytes remaining on stream" when
//! bytes are left after the last whole line: a message cut off, but also a last message whose
//! `\r\n` came in a later read than its JSON (every message was delivered). The two cannot be
//! told apart here, so each reader decides by what it saw: a push that reported its digest, a
//! pull its final status and a build its image id are complete; otherwise the result is
//! [`EngineError::CutShort`], which a caller may retry (docs/protocol.md, "Docker Engine
//! streams").

use std::collections::VecDeque;

use bollard::errors::Error as BollardError;
use bollard::models::{BuildInfo, BuildInfoAux, CreateImageInfo, ProgressDetail, PushImageInfo};
use futures_util::{Stream, StreamExt};

use super::engine::{
    Builder, BuiltImage, EngineError, LOG_TAIL_LINES, Progress, ProgressEvent, PushedImage,
};

/// The last lines of a stream's output; text may arrive in pieces that are not whole lines.
#[derive(Default)]
pub(crate) struct LogTail {
    lines: VecDeque<String>,
    partial: String,
}

impl LogTail {
    pub fn record(&mut self, text: &str, progress: &Progress<'_>) {
        self.partial.push_str(text);
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            self.push_line(line.trim_end(), progress);
        }
    }

    pub fn finish(mut self, progress: &Progress<'_>) -> Vec<String> {
        let rest = std::mem::take(&mut self.partial);
        self.push_line(rest.trim_end(), progress);
        self.lines.into()
    }

    fn push_line(&mut self, line: &str, progress: &Progress<'_>) {
        let line = strip_ansi(line);
        let line = line.as_ref();
        if line.trim().is_empty() {
            return;
        }
        progress(ProgressEvent::Line(line));
        if self.lines.len() == LOG_TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line.to_string());
    }
}

/// `text` without terminal escape sequences (colours, cursor moves): tools in `RUN` steps
/// colour their output, and logs, JSON and error messages are not terminals. A terminal shows
/// one status line per location, where colours would only miscount its width.
pub(crate) fn strip_ansi(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\u{1b}') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters and intermediates up to a final byte in `@`..=`~`.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC (window titles, links): up to BEL or ESC `\`.
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            // Any other escape is two characters long.
            _ => {}
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A status line (`abc123: Pushed`), or `None` for progress-bar updates, which only repeat.
fn status_line(
    id: Option<&str>,
    status: Option<&str>,
    detail: Option<&ProgressDetail>,
) -> Option<String> {
    let status = status?;
    if detail.is_some_and(|d| d.current.is_some() || d.total.is_some()) {
        return None;
    }
    Some(match id {
        Some(id) if !id.is_empty() => format!("{id}: {status}\n"),
        _ => format!("{status}\n"),
    })
}

/// The end of a stream that may have been cut short (see the module comment).
fn is_cut_short(error: &BollardError) -> bool {
    matches!(error, BollardError::IOError { err } if err.to_string() == "bytes remaining on stream")
}

fn stream_error_message(error: BollardError) -> String {
    match error {
        BollardError::DockerStreamError { error } => error,
        BollardError::DockerResponseServerError { message, .. } => message,
        other => other.to_string(),
    }
}

/// Consumes a build stream; the image id comes from the final `aux` item (or, from older
/// engines, the `Successfully built <id>` line).
pub(crate) async fn consume_build<S>(
    stream: S,
    progress: &Progress<'_>,
) -> Result<BuiltImage, EngineError>
where
    S: Stream<Item = Result<BuildInfo, BollardError>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut tail = LogTail::default();
    let mut id = None;
    let mut built_line = None;
    let mut error = None;
    let mut cut_short = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(text) = &info.stream {
                    if let Some(rest) = text.trim().strip_prefix("Successfully built ") {
                        built_line = Some(rest.trim().to_string());
                    }
                    tail.record(text, progress);
                }
                let status = status_line(
                    info.id.as_deref(),
                    info.status.as_deref(),
                    info.progress_detail.as_ref(),
                );
                if let Some(line) = status {
                    tail.record(&line, progress);
                }
                // The classic builder's `aux` is the image id.
                if let Some(BuildInfoAux::Default(image)) = info.aux {
                    id = image.id.or(id);
                }
            }
            Err(e) if is_cut_short(&e) => cut_short = true,
            Err(e) => {
                // Keep reading: the engine may still send lines that explain the failure.
                error.get_or_insert_with(|| stream_error_message(e));
            }
        }
    }
    let log = tail.finish(progress);
    if let Some(message) = error {
        return Err(EngineError::Build { message, log });
    }
    match id.or(built_line) {
        Some(id) => Ok(BuiltImage {
            id,
            builder: Builder::Classic,
            steps: None,
        }),
        None if cut_short => Err(EngineError::CutShort {
            operation: "build".into(),
            log,
        }),
        None => Err(EngineError::Build {
            message: "the engine ended the build without reporting an image".to_string(),
            log,
        }),
    }
}

/// One item of a push or pull stream, as far as progress goes.
struct StatusItem<'a> {
    /// Layer id (pulls only: bollard's push items carry none).
    id: Option<&'a str>,
    status: Option<&'a str>,
    detail: Option<&'a ProgressDetail>,
}

/// How a push or pull stream ended.
struct StatusEnd {
    /// The last lines of output.
    log: Vec<String>,
    /// The first error the engine reported.
    error: Option<String>,
    /// Whether the stream may have been cut short (see the module comment).
    cut_short: bool,
}

/// Reads a push or pull stream to the end: progress out, every status to `on_status`.
async fn consume_status<S, T>(
    stream: S,
    progress: &Progress<'_>,
    view: fn(&T) -> StatusItem<'_>,
    mut on_status: impl FnMut(&str),
) -> StatusEnd
where
    S: Stream<Item = Result<T, BollardError>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut tail = LogTail::default();
    let mut error = None;
    let mut cut_short = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                let item = view(&info);
                if let Some(status) = item.status {
                    on_status(status);
                }
                // Without a layer id, layers are told apart by size.
                transfer(Some(item.id.unwrap_or("")), item.detail, progress);
                if let Some(line) = status_line(item.id, item.status, item.detail) {
                    tail.record(&line, progress);
                }
            }
            Err(e) if is_cut_short(&e) => cut_short = true,
            Err(e) => {
                error.get_or_insert_with(|| stream_error_message(e));
            }
        }
    }
    StatusEnd {
        log: tail.finish(progress),
        error,
        cut_short,
    }
}

/// Consumes a push stream; the digest comes from the `<tag>: digest: sha256:... size: N` line.
pub(crate) async fn consume_push<S>(
    stream: S,
    image: &str,
    registry: &str,
    progress: &Progress<'_>,
) -> Result<PushedImage, EngineError>
where
    S: Stream<Item = Result<PushImageInfo, BollardError>>,
{
    let mut digest = None;
    fn view(info: &PushImageInfo) -> StatusItem<'_> {
        StatusItem {
            id: None,
            status: info.status.as_deref(),
            detail: info.progress_detail.as_ref(),
        }
    }
    let end = consume_status(stream, progress, view, |status| {
        if let Some(found) = digest_in(status) {
            digest = Some(found);
        }
    })
    .await;
    match end.error {
        Some(message) => Err(EngineError::Push {
            image: image.to_string(),
            registry: registry.to_string(),
            message,
            log: end.log,
        }),
        // The engine reports the digest once the registry has the manifest.
        None if end.cut_short && digest.is_none() => Err(EngineError::CutShort {
            operation: format!("push of {image}"),
            log: end.log,
        }),
        None => Ok(PushedImage { digest }),
    }
}

/// Consumes a pull stream; `Ok(false)` when the registry has no such image.
pub(crate) async fn consume_pull<S>(
    stream: S,
    image: &str,
    progress: &Progress<'_>,
) -> Result<bool, EngineError>
where
    S: Stream<Item = Result<CreateImageInfo, BollardError>>,
{
    fn view(info: &CreateImageInfo) -> StatusItem<'_> {
        StatusItem {
            id: info.id.as_deref(),
            status: info.status.as_deref(),
            detail: info.progress_detail.as_ref(),
        }
    }
    // The engine's last word on a pull: `Status: Downloaded newer image for …` or
    // `Status: Image is up to date for …`.
    let mut finished = false;
    let end = consume_status(stream, progress, view, |status| {
        finished |= status.starts_with("Status: ");
    })
    .await;
    match end.error {
        None if end.cut_short && !finished => Err(EngineError::CutShort {
            operation: format!("pull of {image}"),
            log: end.log,
        }),
        None => Ok(true),
        Some(message) if is_missing_image(&message) => Ok(false),
        Some(message) => Err(EngineError::Api {
            operation: format!("pulling {image}"),
            message: if end.log.is_empty() {
                message
            } else {
                format!("{message} (after: {})", end.log.join(" / "))
            },
        }),
    }
}

/// The registry's answer for a tag it does not have, as engines word it.
fn is_missing_image(message: &str) -> bool {
    let lower = message.to_lowercase();
    lower.contains("manifest unknown")
        || lower.contains("not found")
        || lower.contains("does not exist")
}

fn transfer(id: Option<&str>, detail: Option<&ProgressDetail>, progress: &Progress<'_>) {
    if let (Some(layer), Some(d)) = (id, detail)
        && let (Some(current), Some(total)) = (d.current, d.total)
        && total > 0
    {
        progress(ProgressEvent::Transfer {
            layer,
            current: u64::try_from(current).unwrap_or(0),
            total: u64::try_from(total).unwrap_or(0),
        });
    }
}

fn digest_in(status: &str) -> Option<String> {
    let start = status.find("digest: ")? + "digest: ".len();
    let digest = status[start..].split_whitespace().next()?;
    digest.starts_with("sha256:").then(|| digest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ImageId;
    use std::sync::Mutex;

    fn build_text(text: &str) -> Result<BuildInfo, BollardError> {
        Ok(BuildInfo {
            stream: Some(text.to_string()),
            ..Default::default()
        })
    }

    fn stream_error(text: &str) -> BollardError {
        BollardError::DockerStreamError {
            error: text.to_string(),
        }
    }

    #[tokio::test]
    async fn build_error_inside_stream_carries_the_tail_and_later_lines() {
        let seen = Mutex::new(Vec::new());
        let progress = |e: ProgressEvent<'_>| {
            if let Some(line) = e.line() {
                seen.lock().unwrap().push(line.to_string())
            }
        };
        let items = vec![
            build_text("Step 1/2 : FROM base\n"),
            build_text("Step 2/2 : RUN false\n ---> Running in abc\n"),
            Err(stream_error(
                "The command '/bin/sh -c false' returned a non-zero code: 1",
            )),
            build_text("trailing line"),
        ];
        let err = consume_build(futures_util::stream::iter(items), &progress)
            .await
            .unwrap_err();
        match &err {
            EngineError::Build { message, log } => {
                assert!(message.contains("non-zero code: 1"));
                assert_eq!(
                    log,
                    &[
                        "Step 1/2 : FROM base",
                        "Step 2/2 : RUN false",
                        " ---> Running in abc",
                        "trailing line"
                    ]
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(seen.lock().unwrap().len(), 4);
    }

    #[tokio::test]
    async fn build_id_from_aux_or_success_line() {
        let quiet = |_: ProgressEvent<'_>| {};
        let items = vec![
            build_text("Successfully built 1234\n"),
            Ok(BuildInfo {
                aux: Some(BuildInfoAux::Default(ImageId {
                    id: Some("sha256:full".to_string()),
                })),
                ..Default::default()
            }),
        ];
        let built = consume_build(futures_util::stream::iter(items), &quiet)
            .await
            .unwrap();
        assert_eq!(built.id, "sha256:full");
        let items = vec![build_text("Successfully built 1234\n")];
        let built = consume_build(futures_util::stream::iter(items), &quiet)
            .await
            .unwrap();
        assert_eq!(built.id, "1234");
        let err = consume_build(futures_util::stream::iter(vec![build_text("x\n")]), &quiet)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("without reporting an image"),
            "{err}"
        );
    }

    fn cut_short() -> BollardError {
        BollardError::IOError {
            err: std::io::Error::other("bytes remaining on stream"),
        }
    }

    #[tokio::test]
    async fn a_build_cut_short_is_complete_only_once_it_reported_its_image() {
        let quiet = |_: ProgressEvent<'_>| {};
        let image = Ok(BuildInfo {
            aux: Some(BuildInfoAux::Default(ImageId {
                id: Some("sha256:full".to_string()),
            })),
            ..Default::default()
        });
        let items = vec![
            build_text("Step 1/1 : FROM base\n"),
            image,
            Err(cut_short()),
        ];
        let built = consume_build(futures_util::stream::iter(items), &quiet)
            .await
            .unwrap();
        assert_eq!(built.id, "sha256:full");

        let items = vec![build_text("Step 1/1 : FROM base\n"), Err(cut_short())];
        let err = consume_build(futures_util::stream::iter(items), &quiet)
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::CutShort { .. }), "{err:?}");
        assert!(err.to_string().contains("build ended early"), "{err}");
        assert_eq!(err.log_tail(), ["Step 1/1 : FROM base"]);
    }

    #[test]
    fn colour_codes_are_stripped_from_logs() {
        assert_eq!(
            strip_ansi("\u{1b}[1;32mSuccessfully\u{1b}[0m installed \u{1b}]0;title\u{7}x"),
            "Successfully installed x"
        );
        assert_eq!(strip_ansi("plain"), "plain");
        let seen = Mutex::new(Vec::new());
        let progress = |e: ProgressEvent<'_>| {
            if let Some(line) = e.line() {
                seen.lock().unwrap().push(line.to_string())
            }
        };
        let mut tail = LogTail::default();
        tail.record("\u{1b}[31mERROR\u{1b}[0m: boom\n", &progress);
        assert_eq!(tail.finish(&progress), ["ERROR: boom"]);
        assert_eq!(*seen.lock().unwrap(), ["ERROR: boom"]);
    }

    #[tokio::test]
    async fn tail_keeps_only_the_last_lines() {
        let quiet = |_: ProgressEvent<'_>| {};
        let mut items: Vec<_> = (0..100)
            .map(|i| build_text(&format!("line {i}\n")))
            .collect();
        items.push(Err(stream_error("failed")));
        let err = consume_build(futures_util::stream::iter(items), &quiet)
            .await
            .unwrap_err();
        let log = err.log_tail();
        assert_eq!(log.len(), LOG_TAIL_LINES);
        assert_eq!(log.last().map(String::as_str), Some("line 99"));
    }

    #[tokio::test]
    async fn push_digest_progress_filtered_and_errors() {
        let quiet = |_: ProgressEvent<'_>| {};
        let status = |s: &str, current: Option<i64>| {
            Ok(PushImageInfo {
                status: Some(s.to_string()),
                progress_detail: current.map(|c| ProgressDetail {
                    current: Some(c),
                    total: Some(10),
                }),
                ..Default::default()
            })
        };
        let items = vec![
            status("Preparing", None),
            status("Pushing", Some(5)),
            status("v1: digest: sha256:abc size: 527", None),
        ];
        let pushed = consume_push(futures_util::stream::iter(items), "r/a:v1", "r", &quiet)
            .await
            .unwrap();
        assert_eq!(pushed.digest.as_deref(), Some("sha256:abc"));

        let items = vec![
            status("Preparing", None),
            Err(stream_error("unauthorized: authentication required")),
        ];
        let err = consume_push(futures_util::stream::iter(items), "r/a:v1", "r", &quiet)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("push of r/a:v1 failed: unauthorized"),
            "{err}"
        );
        assert_eq!(err.log_tail(), ["Preparing"]);
    }
}
