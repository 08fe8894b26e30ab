//! Writing a prepared [`BuildContext`] as a tar, either into any writer or as a byte stream
//! for the engine. The stream is produced on its own thread into a small bounded channel, so
//! memory stays at a few buffers whatever the size of the context.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use tar::{EntryType, Header};
use tokio::sync::{mpsc, oneshot};

use super::context::{BuildContext, ContextError, EntryKind};

/// The tar as the engine receives it: chunks of bytes, or the error that stopped the writer.
pub type ContextBody = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>;

/// Size of one chunk sent to the engine.
const CHUNK: usize = 64 * 1024;
/// Chunks waiting in the channel: bounds the memory the stream can use.
const QUEUE: usize = 4;

impl BuildContext {
    /// Writes the whole tar into `out`; returns the number of bytes written.
    pub fn write_tar<W: Write>(&self, out: W) -> Result<u64, ContextError> {
        let mut counter = Counting {
            inner: out,
            count: 0,
        };
        let mut builder = tar::Builder::new(&mut counter);
        let mut sent = 0u64;
        for entry in &self.entries {
            let mut header = Header::new_gnu();
            header.set_mode(entry.mode);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(self.mtime);
            header.set_size(0);
            let full = self.root.join(&entry.path);
            let written = match &entry.kind {
                EntryKind::Directory => {
                    header.set_entry_type(EntryType::Directory);
                    builder.append_data(&mut header, &entry.path, io::empty())
                }
                EntryKind::Fifo => {
                    header.set_entry_type(EntryType::Fifo);
                    builder.append_data(&mut header, &entry.path, io::empty())
                }
                EntryKind::Symlink { target } => {
                    header.set_entry_type(EntryType::Symlink);
                    builder.append_link(&mut header, &entry.path, target)
                }
                EntryKind::Generated { data } => {
                    header.set_entry_type(EntryType::Regular);
                    header.set_size(data.len() as u64);
                    sent += data.len() as u64;
                    builder.append_data(&mut header, &entry.path, data.as_slice())
                }
                EntryKind::File => {
                    let file = File::open(&full).map_err(|e| self.io_error(&full, e))?;
                    let size = file.metadata().map_err(|e| self.io_error(&full, e))?.len();
                    sent += size;
                    self.check_limit(sent)?;
                    header.set_entry_type(EntryType::Regular);
                    header.set_size(size);
                    let reader = Exact {
                        inner: file.take(size),
                        left: size,
                    };
                    builder.append_data(&mut header, &entry.path, reader)
                }
            };
            written.map_err(|e| self.write_error(&full, e))?;
        }
        builder
            .finish()
            .map_err(|e| self.write_error(&self.root, e))?;
        drop(builder);
        Ok(counter.count)
    }

    /// Starts writing the tar on a background thread and returns it as a stream, plus a handle
    /// that tells how the writing ended (await it after the engine has consumed the stream).
    pub fn stream(self) -> (ContextBody, ContextProducer) {
        let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(QUEUE);
        let (done_tx, done_rx) = oneshot::channel();
        let self_location = self.location.clone();
        std::thread::spawn(move || {
            let mut writer = ChannelWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(CHUNK),
            };
            let result = self.write_tar(&mut writer).and_then(|count| {
                writer
                    .flush()
                    .map(|_| count)
                    .map_err(|e| self.write_error(&self.root, e))
            });
            if let Err(e) = &result {
                // Fail the HTTP body so the engine does not build a truncated context.
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
            drop(writer);
            drop(tx);
            let _ = done_tx.send(result);
        });
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let location = self_location;
        (
            Box::pin(body),
            ContextProducer {
                done: done_rx,
                location,
            },
        )
    }

    fn check_limit(&self, sent: u64) -> Result<(), ContextError> {
        match self.size_limit {
            Some(limit) if sent > limit => Err(ContextError::TooLarge {
                location: self.location.clone(),
                directory: self.root.clone(),
                limit,
                size: sent,
            }),
            _ => Ok(()),
        }
    }

    fn io_error(&self, path: &Path, source: io::Error) -> ContextError {
        ContextError::Io {
            location: self.location.clone(),
            path: path.to_path_buf(),
            source,
        }
    }

    /// Sorts a failure while writing into: the receiver went away, a file changed under us,
    /// or a plain read error.
    fn write_error(&self, path: &Path, source: io::Error) -> ContextError {
        match source.kind() {
            io::ErrorKind::BrokenPipe => ContextError::Aborted {
                location: self.location.clone(),
            },
            io::ErrorKind::UnexpectedEof => ContextError::Changed {
                location: self.location.clone(),
                path: path.to_path_buf(),
            },
            _ => self.io_error(path, source),
        }
    }
}

/// How the background writer of [`BuildContext::stream`] ended.
pub struct ContextProducer {
    done: oneshot::Receiver<Result<u64, ContextError>>,
    location: String,
}

impl ContextProducer {
    /// Waits for the writer; the number of tar bytes produced, or why it stopped.
    pub async fn finish(self) -> Result<u64, ContextError> {
        match self.done.await {
            Ok(result) => result,
            // The thread ended without reporting: only possible if it panicked.
            Err(_) => Err(ContextError::Io {
                location: self.location,
                path: Default::default(),
                source: io::Error::other("the build context writer stopped unexpectedly"),
            }),
        }
    }
}

/// Reads exactly `left` bytes: a file that shrank since its header was written is an error
/// rather than a corrupt archive (and `take` already stops a file that grew).
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        Ok(n)
    }
}

struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Buffers writes into chunks and hands each full chunk to the channel (blocking while the
/// engine has not caught up).
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::ErrorKind::BrokenPipe.into())
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send_buffer()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffer()
    }
}
