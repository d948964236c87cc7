//! Guest stdout/stderr as `tracing` lines, one event per line, tagged with the task's
//! activity id and type. Bytes are buffered until a newline (or until the stream is
//! dropped, so a last line without newline is not lost); very long lines are cut.
//!
//! The last lines of stderr are also kept per task ([`StderrTail`]): when the guest traps,
//! they go into the failure details, because that is where a panic message or a Python or
//! JavaScript exception is written.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line logged; the rest of a longer line is dropped.
const MAX_LINE: usize = 16 * 1024;
/// Lines of stderr kept for the failure details of a trap.
const TAIL_LINES: usize = 20;
/// Longest line kept in the tail (characters); the rest is cut.
const TAIL_LINE_CHARS: usize = 400;

/// The last lines a task's guest wrote to stderr.
#[derive(Clone, Default)]
pub(crate) struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    fn push(&self, line: &str) {
        let line = match line.char_indices().nth(TAIL_LINE_CHARS) {
            Some((i, _)) => format!("{}…", &line[..i]),
            None => line.to_string(),
        };
        let mut lines = self.0.lock().unwrap();
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The kept lines, oldest first, without blank lines at either end; `None` if the guest
    /// wrote nothing else.
    pub(crate) fn text(&self) -> Option<String> {
        let lines = self.0.lock().unwrap();
        let text = lines
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n");
        let text = text.trim_matches('\n');
        (!text.is_empty()).then(|| text.to_string())
    }
}

/// The `StdoutStream` given to `WasiCtxBuilder::stdout` / `stderr`.
#[derive(Clone)]
pub(crate) struct GuestLog {
    activity_id: Arc<str>,
    activity_type: Arc<str>,
    stream: &'static str,
    /// Where stderr's lines are also kept (`None` for stdout).
    tail: Option<StderrTail>,
}

impl GuestLog {
    pub(crate) fn stdout(activity_id: Arc<str>, activity_type: Arc<str>) -> Self {
        GuestLog {
            activity_id,
            activity_type,
            stream: "stdout",
            tail: None,
        }
    }

    pub(crate) fn stderr(activity_id: Arc<str>, activity_type: Arc<str>, tail: StderrTail) -> Self {
        GuestLog {
            activity_id,
            activity_type,
            stream: "stderr",
            tail: Some(tail),
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
        if let Some(tail) = &self.log.tail {
            tail.push(line);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_lines_cut_short() {
        let tail = StderrTail::default();
        assert_eq!(tail.text(), None);
        let log = GuestLog::stderr("a".into(), "t@1".into(), tail.clone());
        let mut w = log.writer();
        w.push(b"\n");
        assert_eq!(tail.text(), None, "a blank line alone is nothing to report");
        for i in 0..TAIL_LINES + 5 {
            w.push(format!("line {i}\n").as_bytes());
        }
        w.push("é".repeat(TAIL_LINE_CHARS + 10).as_bytes());
        w.push(b"\n");
        let text = tail.text().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), TAIL_LINES, "{text}");
        assert_eq!(lines[0], "line 6");
        assert_eq!(lines[TAIL_LINES - 1].chars().count(), TAIL_LINE_CHARS + 1);
        assert!(lines[TAIL_LINES - 1].ends_with('…'));
    }
}
