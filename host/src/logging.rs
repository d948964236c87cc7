//! Log setup: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), as text for
//! people or JSON lines for machines (`--log-format json`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the global subscriber; stdout stays free for command output.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour())
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging already set up: {e}");
    }
    log_panics();
}

/// Panics become error events of the log, in its format, carrying the span they happened
/// in: a JSON log stays one object per line, and a panic while a task runs names the task
/// (`activity_id`, `workflow_id`, ...). The default hook's plain stderr text had neither.
/// A backtrace comes with `RUST_BACKTRACE=1`, as with the default hook. Where the log
/// would not show the event (`RUST_LOG=swasm=debug` names no other target, a thread with no
/// subscriber), the hook that was set before (Rust's default) reports it instead.
pub fn log_panics() {
    let before = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if tracing::enabled!(target: "tracing_panic", tracing::Level::ERROR) {
            tracing_panic::panic_hook(info);
        } else {
            before(info);
        }
    }));
}

/// Colours only on a terminal, and not when `NO_COLOR` is set (no-color.org): a log file,
/// a pipe or the journal gets plain `key=value` text that grep and log shippers can read.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
