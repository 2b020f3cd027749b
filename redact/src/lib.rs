//! Redaction engine (in progress).
