//! Guards and helpers for the emitting thread's side of the layer.

use std::cell::Cell;

use logbook_proto::Level;
use tracing_core::Metadata;

thread_local! {
    static IN_LAYER: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as inside the layer. An event emitted while the layer works
/// (say, by a field's `Debug` impl) finds the mark, is counted as dropped and returns:
/// it can neither recurse nor deadlock.
pub(crate) struct Reentrancy(());

impl Reentrancy {
    pub(crate) fn enter() -> Option<Self> {
        IN_LAYER.with(|busy| {
            if busy.replace(true) {
                None
            } else {
                Some(Self(()))
            }
        })
    }
}

impl Drop for Reentrancy {
    fn drop(&mut self) {
        IN_LAYER.with(|busy| busy.set(false));
    }
}

/// The proto level of a `tracing` level.
pub(crate) fn level_of(meta: &Metadata<'_>) -> Level {
    match *meta.level() {
        tracing_core::Level::TRACE => Level::Trace,
        tracing_core::Level::DEBUG => Level::Debug,
        tracing_core::Level::INFO => Level::Info,
        tracing_core::Level::WARN => Level::Warn,
        _ => Level::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reentrancy_guard_is_exclusive_per_thread() {
        let g = Reentrancy::enter().unwrap();
        assert!(Reentrancy::enter().is_none());
        drop(g);
        assert!(Reentrancy::enter().is_some());
    }
}
