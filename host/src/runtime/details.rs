//! Error text written with a bound: failure details and load errors.
//!
//! Part of that text comes from the guest: the function and module names of a trap's
//! backtrace (a component's name section), and whatever a start function did at load. An
//! 8 MiB function name made one trap's details take 853 MB of host memory (20 frames of the
//! full name, formatted twice, then cut to what SWF accepts), and a start function trapping
//! in a 1 MiB file made a 20 MB load error, logged and kept for `/status`. Here everything
//! is written into a [`Bounded`] text, which refuses what goes past its limit, so formatting
//! stops there; a frame's names are cut on their own, so every frame shows; and the wasm
//! backtrace is written once, by [`write_backtrace`], not by its `Display`.

use std::fmt::{self, Write};

use wasmtime::WasmBacktrace;

/// Longest function or module name a backtrace frame shows (characters); the rest is cut.
pub(crate) const MAX_FRAME_NAME_CHARS: usize = 200;

/// How wasmtime's `Display` of a [`WasmBacktrace`] begins: how the backtrace is told from
/// the other causes of an error without formatting it (see [`is_backtrace`]).
const BACKTRACE_HEADER: &str = "error while executing at wasm backtrace:";

/// Text of at most a number of characters. A write past the limit keeps what fits and
/// fails, and so does every later one, so a `Display` writing into it stops early.
pub(crate) struct Bounded {
    text: String,
    /// Characters that may still be written.
    left: usize,
}

impl Bounded {
    pub(crate) fn new(max_chars: usize) -> Bounded {
        Bounded {
            text: String::new(),
            left: max_chars,
        }
    }

    /// Writes `value`'s `Display`, as much of it as fits.
    pub(crate) fn display(&mut self, value: &dyn fmt::Display) {
        // An error here only says the text is full.
        let _ = write!(self, "{value}");
    }

    /// Writes `s`, as much of it as fits.
    pub(crate) fn push(&mut self, s: &str) {
        let _ = self.write_str(s);
    }

    pub(crate) fn into_string(self) -> String {
        self.text
    }
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match s.char_indices().nth(self.left) {
            Some((cut, _)) => {
                self.text.push_str(&s[..cut]);
                self.left = 0;
                Err(fmt::Error)
            }
            None => {
                self.left -= s.chars().count();
                self.text.push_str(s);
                Ok(())
            }
        }
    }
}

/// The wasm backtrace wasmtime attached to `error`, if any.
pub(crate) fn backtrace(error: &wasmtime::Error) -> Option<&WasmBacktrace> {
    error.downcast_ref::<WasmBacktrace>()
}

/// Whether `cause`, one link of an error's chain, is its wasm backtrace; told by the first
/// characters of its `Display` alone (the link is wasmtime's private context type, so it
/// cannot be downcast).
fn is_backtrace(cause: &(dyn std::error::Error + 'static)) -> bool {
    let mut probe = Bounded::new(BACKTRACE_HEADER.len());
    probe.display(cause);
    probe.text == BACKTRACE_HEADER
}

/// Writes `error`'s causes, outermost first, joined by ": " (as `{:#}` shows them), after a
/// ": " if `separate`. Its wasm backtrace is left out: see [`write_backtrace`].
pub(crate) fn write_causes(out: &mut Bounded, error: &wasmtime::Error, mut separate: bool) {
    let has_backtrace = backtrace(error).is_some();
    for cause in error.chain() {
        if has_backtrace && is_backtrace(cause) {
            continue;
        }
        if separate {
            out.push(": ");
        }
        out.display(cause);
        separate = true;
    }
}

/// Writes `backtrace` as wasmtime shows it, one line per frame, with each frame's module
/// and function name cut to [`MAX_FRAME_NAME_CHARS`]. Names are shown as the name section
/// has them (wasm-ld writes them demangled); DWARF symbols are not read (the engine has
/// backtrace details off).
pub(crate) fn write_backtrace(out: &mut Bounded, backtrace: &WasmBacktrace) {
    out.push(BACKTRACE_HEADER);
    for (i, frame) in backtrace.frames().iter().enumerate() {
        let _ = write!(out, "\n  {i:>3}: ");
        if let Some(offset) = frame.module_offset() {
            let _ = write!(out, "{offset:#8x} - ");
        }
        write_name(out, frame.module().name().unwrap_or("<unknown>"));
        out.push("!");
        match frame.func_name() {
            Some(name) => write_name(out, name),
            None => {
                let _ = write!(out, "<wasm function {}>", frame.func_index());
            }
        }
    }
}

/// `name`, cut to [`MAX_FRAME_NAME_CHARS`] with "…" when longer.
fn write_name(out: &mut Bounded, name: &str) {
    match name.char_indices().nth(MAX_FRAME_NAME_CHARS) {
        Some((cut, _)) => {
            out.push(&name[..cut]);
            out.push("…");
        }
        None => out.push(name),
    }
}

/// `error` in at most `max_chars` characters: its causes joined by ": ", then its wasm
/// backtrace, if any, after a blank line. For load errors.
pub(crate) fn error_text(error: &wasmtime::Error, max_chars: usize) -> String {
    let mut out = Bounded::new(max_chars);
    write_causes(&mut out, error, false);
    if let Some(backtrace) = backtrace(error) {
        out.push("\n\n");
        write_backtrace(&mut out, backtrace);
    }
    out.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_text_keeps_what_fits_and_stops() {
        let mut out = Bounded::new(5);
        out.push("ab");
        assert!(out.write_str("cdéfg").is_err());
        assert!(write!(out, "more").is_err());
        assert_eq!(out.into_string(), "abcdé");

        let mut out = Bounded::new(3);
        out.push("abc");
        out.push("");
        assert_eq!(out.into_string(), "abc");
    }

    /// A `Display` that would write without end stops at the bound.
    #[test]
    fn bounded_text_stops_an_endless_display() {
        struct Endless;
        impl fmt::Display for Endless {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                loop {
                    f.write_str("x")?;
                }
            }
        }
        let mut out = Bounded::new(10);
        out.display(&Endless);
        assert_eq!(out.into_string(), "x".repeat(10));
    }

    #[test]
    fn causes_are_joined_as_alternate_display_joins_them() {
        let e = wasmtime::format_err!("root")
            .context("middle")
            .context("outer");
        let mut out = Bounded::new(100);
        write_causes(&mut out, &e, false);
        assert_eq!(out.into_string(), format!("{e:#}"));
        assert_eq!(error_text(&e, 8), "outer: m");
    }
}
