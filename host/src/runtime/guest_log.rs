//! Guest stdout/stderr as `tracing` lines, one event per line, tagged with the task's
//! activity id and type. Bytes are buffered until a newline (or until the stream is
//! dropped, so a last line without newline is not lost); very long lines are cut.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line logged; the rest of a longer line is dropped.
const MAX_LINE: usize = 16 * 1024;

/// The `StdoutStream` given to `WasiCtxBuilder::stdout` / `stderr`.
#[derive(Clone)]
pub(crate) struct GuestLog {
    activity_id: Arc<str>,
    activity_type: Arc<str>,
    stream: &'static str,
}

impl GuestLog {
    pub(crate) fn new(
        activity_id: Arc<str>,
        activity_type: Arc<str>,
        stream: &'static str,
    ) -> Self {
        GuestLog {
            activity_id,
            activity_type,
            stream,
        }
    }

    fn writer(&self) -> LineWriter {
        LineWriter {
            log: self.clone(),
            buf: Vec::new(),
        }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.writer())
    }
}

/// Buffers one stream's bytes and emits complete lines.
pub(crate) struct LineWriter {
    log: GuestLog,
    buf: Vec<u8>,
}

impl LineWriter {
    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            self.append(&bytes[..nl]);
            self.emit();
            bytes = &bytes[nl + 1..];
        }
        self.append(bytes);
    }

    fn append(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn emit(&mut self) {
        let line = String::from_utf8_lossy(&self.buf);
        let line = line.trim_end_matches('\r');
        tracing::info!(
            target: "swasm::guest",
            activity_id = %self.log.activity_id,
            activity_type = %self.log.activity_type,
            stream = self.log.stream,
            "{line}"
        );
        self.buf.clear();
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.emit();
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
