//! Nested JSON field values: `field = logbook_layer::json(&value)`.

use std::cell::Cell;
use std::fmt;
use std::io;

use serde::Serialize;
use tracing_core::field::DebugValue;

thread_local! {
    /// How many bytes the last [`Json`] wrote on this thread. The layer's visitor reads it
    /// to keep a value written entirely by one `Json` as nested JSON instead of text.
    static LAST: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Records `value` as nested JSON rather than text:
///
/// ```
/// # #[derive(serde::Serialize)] struct Message { role: &'static str }
/// let messages = vec![Message { role: "user" }];
/// tracing::info!(gen_ai.input.messages = logbook_layer::json(&messages), "prompt");
/// ```
///
/// Other layers (e.g. `fmt`) see the compact JSON text.
pub fn json<T: Serialize>(value: T) -> DebugValue<Json<T>> {
    tracing_core::field::debug(Json(value))
}

/// A value shown as JSON; see [`json`].
pub struct Json<T>(pub T);

/// Lets serde_json write straight into a formatter, counting bytes.
struct FmtWriter<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
    written: usize,
}

impl io::Write for FmtWriter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let s =
            std::str::from_utf8(buf).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        self.f
            .write_str(s)
            .map_err(|_| io::Error::from(io::ErrorKind::Other))?;
        self.written += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<T: Serialize> fmt::Debug for Json<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut w = FmtWriter { f, written: 0 };
        // serde_json writes whole UTF-8 sequences per call, so `from_utf8` above holds.
        match serde_json::to_writer(&mut w, &self.0) {
            Ok(()) => {
                LAST.with(|l| l.set(Some(w.written)));
                Ok(())
            }
            Err(e) => write!(w.f, "<unserializable: {e}>"),
        }
    }
}

impl<T: Serialize> fmt::Display for Json<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Clears the marker before formatting a value.
pub(crate) fn clear() {
    LAST.with(|l| l.set(None));
}

/// Whether the whole rendering `text` was written by exactly one [`Json`].
pub(crate) fn take_if_whole(text: &[u8]) -> bool {
    LAST.with(Cell::take) == Some(text.len())
}
