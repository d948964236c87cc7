//! Guest stdout/stderr as `tracing` lines, one event per line, tagged with the task's
//! activity id and type. Bytes are buffered until a newline (or until the stream is
//! dropped, so a last line without newline is not lost); very long lines are cut.
//!
//! Per task ([`TaskOutput`]), at most [`MAX_LINES`] lines are logged: a guest printing in a
//! loop must not flood the host's log. The last lines of stderr are also kept: when the
//! guest traps, they go into the failure details, because that is where a panic message or
//! a Python or JavaScript exception is written.
//!
//! A write runs on the guest's thread, inside one host call that the epoch cannot
//! interrupt, so its cost is bounded: a write carries at most [`WRITE_BUDGET`] bytes (what
//! `check-write` permits), and once the task is past [`MAX_LINES`] a write costs what the
//! stderr tail needs, not a step per line written.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// Longest line logged; the rest of a longer line is dropped.
const MAX_LINE: usize = 16 * 1024;
/// Lines of one task logged (stdout and stderr together); later ones are dropped.
pub(crate) const MAX_LINES: usize = 1000;
/// Lines of stderr kept for the failure details of a trap.
const TAIL_LINES: usize = 20;
/// Longest line kept in the tail (characters); the rest is cut.
const TAIL_LINE_CHARS: usize = 400;
/// Bytes of a line that hold its first [`TAIL_LINE_CHARS`] characters in any UTF-8 (and
/// one more, so the tail shows the line was cut).
const TAIL_LINE_BYTES: usize = 4 * TAIL_LINE_CHARS + 4;
/// The most bytes one `write` may carry: what `check-write` permits. WASI says a `write` of
/// more than `check-write` permitted traps; wasmtime-wasi leaves that check to the stream
/// (its own pipes trap). Without it one `write` of 64 MiB of newlines held the guest thread
/// (and every other run placed on it) for 17 s of host CPU, far past the task's `timeout_s`:
/// the epoch interrupts guest code, not a host call.
pub(crate) const WRITE_BUDGET: usize = 64 * 1024;

/// What one task's guest has written: how many lines, and the last lines of stderr.
#[derive(Clone, Default)]
pub(crate) struct TaskOutput(Arc<Output>);

#[derive(Default)]
struct Output {
    /// Lines ended so far (stdout and stderr), up to the first past [`MAX_LINES`]: later
    /// lines are neither logged nor counted.
    lines: AtomicUsize,
    stderr_tail: Mutex<VecDeque<String>>,
    /// The bytes of the line stderr is writing, not ended yet (enough for the tail's width);
    /// rendered only when the tail is read. A guest that aborts or is stopped mid-line has
    /// written there what explains it.
    stderr_partial: Mutex<Vec<u8>>,
    /// Lines put into the stderr tail, for the tests: a write past [`MAX_LINES`] puts at
    /// most [`TAIL_LINES`], however many lines it ends.
    #[cfg(test)]
    tail_pushes: AtomicUsize,
}

/// `line` cut to the tail's width.
fn tail_line(line: &str) -> String {
    match line.char_indices().nth(TAIL_LINE_CHARS) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

impl TaskOutput {
    /// Whether the task has written more than [`MAX_LINES`] lines (and the line saying so
    /// was logged): nothing more is logged.
    fn past_line_budget(&self) -> bool {
        self.0.lines.load(Ordering::Relaxed) > MAX_LINES
    }

    fn keep_stderr(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(&line[..line.len().min(TAIL_LINE_BYTES)]);
        let line = tail_line(line.trim_end_matches('\r'));
        #[cfg(test)]
        self.0.tail_pushes.fetch_add(1, Ordering::Relaxed);
        let mut lines = self.0.stderr_tail.lock().unwrap();
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn stderr_writing(&self, partial: &[u8]) {
        let partial = &partial[..partial.len().min(TAIL_LINE_BYTES)];
        let mut kept = self.0.stderr_partial.lock().unwrap();
        kept.clear();
        kept.extend_from_slice(partial);
    }

    /// The last lines of stderr, oldest first, the line still being written last, without
    /// blank lines at either end; `None` if the guest wrote nothing else there.
    pub(crate) fn stderr_tail(&self) -> Option<String> {
        let lines = self.0.stderr_tail.lock().unwrap();
        let partial = self.0.stderr_partial.lock().unwrap();
        let partial = (!partial.is_empty()).then(|| tail_line(&String::from_utf8_lossy(&partial)));
        let skip = (lines.len() == TAIL_LINES && partial.is_some()) as usize;
        let text = lines
            .iter()
            .skip(skip)
            .map(String::as_str)
            .chain(partial.as_deref())
            .collect::<Vec<_>>()
            .join("\n");
        let text = text.trim_matches('\n');
        (!text.is_empty()).then(|| text.to_string())
    }
}

/// Which of a guest's output streams.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The `StdoutStream` given to `WasiCtxBuilder::stdout` / `stderr`.
#[derive(Clone)]
pub(crate) struct GuestLog {
    activity_id: Arc<str>,
    activity_type: Arc<str>,
    stream: Stream,
    /// Shared by the task's stdout and stderr.
    output: TaskOutput,
}

impl GuestLog {
    pub(crate) fn new(
        activity_id: Arc<str>,
        activity_type: Arc<str>,
        stream: Stream,
        output: TaskOutput,
    ) -> Self {
        GuestLog {
            activity_id,
            activity_type,
            stream,
            output,
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
            if self.log.output.past_line_budget() {
                self.push_unlogged(bytes);
                return;
            }
            self.append(&bytes[..nl]);
            self.emit();
            bytes = &bytes[nl + 1..];
        }
        self.append(bytes);
        self.note_partial();
    }

    /// `bytes`, which end at least one line, once the task is past [`MAX_LINES`]: no line
    /// is logged, so only the stderr tail needs them, and only its last [`TAIL_LINES`]
    /// lines, found from the end (`rsplitn` stops there). A write of 64 KiB of newlines
    /// costs 20 lines, not 65,536.
    fn push_unlogged(&mut self, bytes: &[u8]) {
        let last = bytes
            .iter()
            .rposition(|&b| b == b'\n')
            .expect("bytes end a line");
        if self.log.stream == Stream::Stderr {
            // Newest first; with `TAIL_LINES` + 1 items, the last is everything before the
            // tail's lines, otherwise it is the first line, which continues `buf`.
            let lines: Vec<&[u8]> = bytes[..last]
                .rsplitn(TAIL_LINES + 1, |&b| b == b'\n')
                .collect();
            let continues_buf = lines.len() <= TAIL_LINES;
            for (i, line) in lines.iter().enumerate().take(TAIL_LINES).rev() {
                if continues_buf && i == lines.len() - 1 {
                    self.append(line);
                    self.log.output.keep_stderr(&self.buf);
                } else {
                    self.log.output.keep_stderr(line);
                }
            }
        }
        self.buf.clear();
        self.append(&bytes[last + 1..]);
        self.note_partial();
    }

    /// Tells the tail what stderr's unended line holds now.
    fn note_partial(&self) {
        if self.log.stream == Stream::Stderr {
            self.log.output.stderr_writing(&self.buf);
        }
    }

    fn append(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn emit(&mut self) {
        let output = &self.log.output;
        let n = if output.past_line_budget() {
            MAX_LINES + 2
        } else {
            output.0.lines.fetch_add(1, Ordering::Relaxed) + 1
        };
        if n <= MAX_LINES {
            let line = String::from_utf8_lossy(&self.buf);
            let line = line.trim_end_matches('\r');
            tracing::info!(
                target: "swasm::guest",
                activity_id = %self.log.activity_id,
                activity_type = %self.log.activity_type,
                stream = self.log.stream.name(),
                "{line}"
            );
        } else if n == MAX_LINES + 1 {
            tracing::warn!(
                target: "swasm::guest",
                activity_id = %self.log.activity_id,
                activity_type = %self.log.activity_type,
                "the guest wrote more than {MAX_LINES} lines: the rest of this task's output is not logged"
            );
        }
        if self.log.stream == Stream::Stderr {
            output.keep_stderr(&self.buf);
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
        if bytes.len() > WRITE_BUDGET {
            return Err(StreamError::trap(&format!(
                "a write of {} bytes to {}: check-write permits at most {WRITE_BUDGET}, and WASI traps a write of more",
                bytes.len(),
                self.log.stream.name()
            )));
        }
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // A partial write: the caller writes the rest in another call.
        let buf = &buf[..buf.len().min(WRITE_BUDGET)];
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

    /// Runs `f` with a subscriber that takes every event. Each test that writes guest lines
    /// does: a callsite first hit with no subscriber at all could be cached as never
    /// enabled while the counting test below rebuilds its interest.
    fn subscribed(f: impl FnOnce()) {
        tracing::subscriber::with_default(tracing_subscriber::registry(), f)
    }

    #[test]
    fn the_tail_keeps_the_last_lines_cut_short() {
        subscribed(the_tail_keeps_the_last_lines_cut_short_inner)
    }

    fn the_tail_keeps_the_last_lines_cut_short_inner() {
        let output = TaskOutput::default();
        assert_eq!(output.stderr_tail(), None);
        let mut err =
            GuestLog::new("a".into(), "t@1".into(), Stream::Stderr, output.clone()).writer();
        let mut out =
            GuestLog::new("a".into(), "t@1".into(), Stream::Stdout, output.clone()).writer();
        err.push(b"\n");
        out.push(b"stdout is not kept\n");
        assert_eq!(
            output.stderr_tail(),
            None,
            "a blank line alone is nothing to report"
        );
        for i in 0..TAIL_LINES + 5 {
            err.push(format!("line {i}\n").as_bytes());
        }
        err.push("é".repeat(TAIL_LINE_CHARS + 10).as_bytes());
        err.push(b"\n");
        let text = output.stderr_tail().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), TAIL_LINES, "{text}");
        assert_eq!(lines[0], "line 6");
        assert_eq!(lines[TAIL_LINES - 1].chars().count(), TAIL_LINE_CHARS + 1);
        assert!(lines[TAIL_LINES - 1].ends_with('…'));
    }

    /// A guest that aborts or is stopped in the middle of a line (C's `fprintf(stderr,
    /// "fatal: ...")` then `abort()`) has its unended line in the tail.
    #[test]
    fn the_tail_ends_with_the_line_being_written() {
        subscribed(the_tail_ends_with_the_line_being_written_inner)
    }

    fn the_tail_ends_with_the_line_being_written_inner() {
        let output = TaskOutput::default();
        let mut err =
            GuestLog::new("a".into(), "t@1".into(), Stream::Stderr, output.clone()).writer();
        err.push(b"reading input\nfatal: ");
        err.push(b"bad input");
        assert_eq!(
            output.stderr_tail().as_deref(),
            Some("reading input\nfatal: bad input")
        );
        err.push(b"\n");
        assert_eq!(
            output.stderr_tail().as_deref(),
            Some("reading input\nfatal: bad input"),
            "once ended, the line is in the tail once"
        );
        for i in 0..TAIL_LINES {
            err.push(format!("line {i}\n").as_bytes());
        }
        err.push(b"last");
        let text = output.stderr_tail().unwrap();
        assert_eq!(text.lines().count(), TAIL_LINES, "{text}");
        assert!(
            text.starts_with("line 1\n") && text.ends_with("line 19\nlast"),
            "{text}"
        );
    }

    /// Past [`MAX_LINES`] a write costs what the stderr tail needs, not a step per line:
    /// half a write budget of newlines puts at most [`TAIL_LINES`] lines into the tail (it
    /// put 32,768), and the tail is what it would be line by line.
    #[test]
    fn past_the_line_budget_a_write_costs_the_tail_not_its_lines() {
        subscribed(past_the_line_budget_a_write_costs_the_tail_not_its_lines_inner)
    }

    fn past_the_line_budget_a_write_costs_the_tail_not_its_lines_inner() {
        let output = TaskOutput::default();
        let mut err =
            GuestLog::new("a".into(), "t@1".into(), Stream::Stderr, output.clone()).writer();
        for i in 0..=MAX_LINES {
            err.push(format!("line {i}\n").as_bytes());
        }
        assert!(output.past_line_budget());
        let pushes = || output.0.tail_pushes.load(Ordering::Relaxed);

        // A line begun in one write and ended in the next is one line.
        err.push(b"sta");
        err.push(b"rt\nmid\nen");
        let text = output.stderr_tail().unwrap();
        assert!(text.ends_with("line 1000\nstart\nmid\nen"), "{text}");

        let before = pushes();
        let mut write = b"d\n".to_vec();
        write.resize(WRITE_BUDGET / 2, b'\n');
        for i in 0..TAIL_LINES {
            write.extend_from_slice(format!("tail {i}\n").as_bytes());
        }
        write.extend_from_slice(b"unended");
        err.push(&write);
        assert!(
            pushes() - before <= TAIL_LINES,
            "{} lines",
            pushes() - before
        );
        let text = output.stderr_tail().unwrap();
        assert_eq!(text.lines().count(), TAIL_LINES, "{text}");
        assert!(
            text.starts_with("tail 1\n") && text.ends_with("tail 19\nunended"),
            "{text}"
        );

        // A long line past the budget is cut in the tail as before it.
        err.push(&vec![b'x'; WRITE_BUDGET - 1]);
        err.push(b"\n");
        let text = output.stderr_tail().unwrap();
        let last = text.lines().last().unwrap();
        assert!(
            last.starts_with("unendedxxx") && last.ends_with('…'),
            "{last}"
        );
        assert_eq!(last.chars().count(), TAIL_LINE_CHARS + 1);
    }

    /// A write of more than `check-write` permits traps, as WASI says, before any of it is
    /// looked at.
    #[test]
    fn a_write_past_the_budget_traps() {
        let output = TaskOutput::default();
        let mut err =
            GuestLog::new("a".into(), "t@1".into(), Stream::Stderr, output.clone()).writer();
        assert_eq!(err.check_write().unwrap(), WRITE_BUDGET);
        match err.write(Bytes::from(vec![b'\n'; WRITE_BUDGET + 1])) {
            Err(StreamError::Trap(e)) => assert!(e.to_string().contains("check-write"), "{e}"),
            other => panic!("{:?}", other.err().map(|e| e.to_string())),
        }
        assert_eq!(output.0.lines.load(Ordering::Relaxed), 0);
        subscribed(|| {
            err.write(Bytes::from(vec![b'\n'; WRITE_BUDGET])).unwrap();
        });
    }

    #[test]
    fn a_task_logs_at_most_max_lines_but_keeps_its_stderr_tail() {
        let logged = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry().with(Count(logged.clone()));
        tracing::subscriber::with_default(subscriber, || {
            // Other tests may have run these callsites with no subscriber: ask again.
            tracing::callsite::rebuild_interest_cache();
            let output = TaskOutput::default();
            let mut out =
                GuestLog::new("a".into(), "t@1".into(), Stream::Stdout, output.clone()).writer();
            let mut err =
                GuestLog::new("a".into(), "t@1".into(), Stream::Stderr, output.clone()).writer();
            for i in 0..MAX_LINES {
                out.push(format!("out {i}\n").as_bytes());
            }
            err.push(b"err 1\nerr 2\n");
            // The lines within the budget, then one line saying the rest is dropped.
            assert_eq!(logged.load(Ordering::Relaxed), MAX_LINES + 1);
            assert_eq!(output.stderr_tail().as_deref(), Some("err 1\nerr 2"));
        });
    }

    /// Counts the events it sees.
    struct Count(Arc<AtomicUsize>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
        fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    use tracing_subscriber::layer::SubscriberExt;
}
