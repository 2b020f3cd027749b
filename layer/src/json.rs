//! Nested JSON field values: `field = logbook_layer::json(&value)`.

use std::cell::RefCell;
use std::fmt;

use serde::Serialize;
use tracing_core::field::DebugValue;

thread_local! {
    /// The last JSON a [`Json`] wrote on this thread; the layer's visitor takes it to
    /// keep the value as nested JSON instead of text.
    static LAST: RefCell<Option<logbook_proto::Json>> = const { RefCell::new(None) };
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

impl<T: Serialize> fmt::Debug for Json<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match logbook_proto::Json::from_serialize(&self.0) {
            Ok(j) => {
                f.write_str(j.as_str())?;
                LAST.with(|l| *l.borrow_mut() = Some(j));
                Ok(())
            }
            Err(e) => write!(f, "<unserializable: {e}>"),
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
    LAST.with(|l| l.borrow_mut().take());
}

/// The JSON just written, if the whole rendering `text` was exactly one [`Json`].
pub(crate) fn take_if_whole(text: &str) -> Option<logbook_proto::Json> {
    LAST.with(|l| l.borrow_mut().take())
        .filter(|j| j.as_str().len() == text.len())
}
