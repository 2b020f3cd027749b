//! Fields already in wire encoding. The layer writes an event's fields (and message)
//! straight into an [`EncodedFields`] on the emitting thread, one allocation per event;
//! the sender copies the bytes into a frame without decoding them.

use std::fmt;

use super::encode::{put_str, put_value, put_varint, zigzag};
use super::tag;
use crate::value::{Fields, Value};

/// A record's fields in the wire encoding of a record's field list (without the
/// count), plus optionally its message text, kept apart from the fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncodedFields {
    bytes: Vec<u8>,
    count: u32,
    /// The message text (its allocation is kept across `clear`).
    message: String,
    has_message: bool,
}

impl EncodedFields {
    /// No fields; allocates nothing.
    pub const fn new() -> Self {
        Self {
            bytes: Vec::new(),
            count: 0,
            message: String::new(),
            has_message: false,
        }
    }

    /// Room for `bytes` bytes of fields.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            ..Self::new()
        }
    }

    /// Number of fields (the message is not one).
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes allocated.
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Appends a field with a typed value.
    pub fn push(&mut self, key: &str, value: &Value) {
        put_str(&mut self.bytes, key);
        put_value(&mut self.bytes, value);
        self.count += 1;
    }

    /// Appends a signed integer field.
    pub fn push_i64(&mut self, key: &str, v: i64) {
        put_str(&mut self.bytes, key);
        self.bytes.push(tag::I64);
        put_varint(&mut self.bytes, zigzag(v));
        self.count += 1;
    }

    /// Appends an unsigned integer field.
    pub fn push_u64(&mut self, key: &str, v: u64) {
        put_str(&mut self.bytes, key);
        self.bytes.push(tag::U64);
        put_varint(&mut self.bytes, v);
        self.count += 1;
    }

    /// Appends a float field.
    pub fn push_f64(&mut self, key: &str, v: f64) {
        put_str(&mut self.bytes, key);
        self.bytes.push(tag::F64);
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self.count += 1;
    }

    /// Appends a boolean field.
    pub fn push_bool(&mut self, key: &str, v: bool) {
        put_str(&mut self.bytes, key);
        self.bytes.push(if v { tag::TRUE } else { tag::FALSE });
        self.count += 1;
    }

    /// Appends a string field, cut to `max_bytes` (see [`TextField::finish`]).
    pub fn push_str(&mut self, key: &str, v: &str, max_bytes: usize) {
        if v.len() > max_bytes {
            let mut w = self.text(key);
            let _ = fmt::Write::write_str(&mut w, v);
            return w.finish(false, max_bytes);
        }
        put_str(&mut self.bytes, key);
        self.bytes.push(tag::STR);
        put_str(&mut self.bytes, v);
        self.count += 1;
    }

    /// Makes room for at least `additional` more bytes.
    pub fn reserve(&mut self, additional: usize) {
        self.bytes.reserve(additional);
    }

    /// Removes every field and the message, keeping the allocation for reuse.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.count = 0;
        self.message.clear();
        self.has_message = false;
    }

    /// Starts a text field whose value is written with `fmt::Write` (no intermediate
    /// string); [`TextField::finish`] completes it.
    pub fn text(&mut self, key: &str) -> TextField<'_> {
        put_str(&mut self.bytes, key);
        self.bytes.push(tag::STR);
        let value = self.bytes.len();
        TextField {
            fields: self,
            value,
        }
    }

    /// Starts the message text; replaces an earlier message.
    pub fn message(&mut self) -> MessageText<'_> {
        self.message.clear();
        self.has_message = false;
        MessageText { fields: self }
    }

    /// The message text, if one was written.
    pub fn message_str(&self) -> Option<&str> {
        self.has_message.then_some(self.message.as_str())
    }

    /// The encoded field entries.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Appends another buffer's fields (not its message).
    pub fn append(&mut self, other: &EncodedFields) {
        self.bytes.extend_from_slice(&other.bytes);
        self.count += other.count;
    }

    /// Removes every field named in `keys` (so that a value recorded again replaces the
    /// earlier one instead of piling up). Returns how many were removed.
    pub fn remove_keys(&mut self, keys: &[&str]) -> usize {
        if self.count == 0 || keys.is_empty() {
            return 0;
        }
        let mut kept = Vec::with_capacity(self.bytes.len());
        let mut removed = 0;
        let mut pos = 0;
        while pos < self.bytes.len() {
            let Some((key, end)) = super::decode::field_entry_at(&self.bytes, pos) else {
                // Not ours to judge: keep the rest as it is.
                kept.extend_from_slice(&self.bytes[pos..]);
                break;
            };
            if keys.contains(&key) {
                removed += 1;
            } else {
                kept.extend_from_slice(&self.bytes[pos..end]);
            }
            pos = end;
        }
        self.bytes = kept;
        self.count -= to_u32(removed);
        removed
    }

    /// Decodes the fields (last value wins for a repeated key).
    pub fn decode(&self) -> Result<Fields, super::DecodeError> {
        super::decode::decode_field_chunks(&[&self.bytes])
    }
}

/// A text field being written; see [`EncodedFields::text`].
pub struct TextField<'a> {
    fields: &'a mut EncodedFields,
    value: usize,
}

impl TextField<'_> {
    /// The text written so far.
    pub fn written(&self) -> &[u8] {
        &self.fields.bytes[self.value..]
    }

    /// Completes the field: a string, or nested JSON when `json` (the text must then be
    /// one valid JSON value). Text longer than `max_bytes` is cut at a character
    /// boundary and ends with `…[truncated N bytes]` (and is then a string).
    pub fn finish(self, json: bool, max_bytes: usize) {
        let bytes = &mut self.fields.bytes;
        let mut json = json;
        let len = bytes.len() - self.value;
        if len > max_bytes {
            let mut cut = self.value + max_bytes;
            // Back up to the start of a UTF-8 character.
            while cut > self.value && (bytes[cut] & 0xc0) == 0x80 {
                cut -= 1;
            }
            let dropped = bytes.len() - cut;
            bytes.truncate(cut);
            let _ = fmt::Write::write_fmt(
                &mut Appender(bytes),
                format_args!("…[truncated {dropped} bytes]"),
            );
            json = false;
        }
        bytes[self.value - 1] = if json { tag::JSON } else { tag::STR };
        // The length goes before the text, which is already written: shift the text
        // right by the length's size and put the length in the gap.
        let text_len = bytes.len() - self.value;
        let mut prefix = [0u8; 10];
        let n = varint_into(&mut prefix, text_len as u64);
        bytes.resize(bytes.len() + n, 0);
        bytes.copy_within(self.value..self.value + text_len, self.value + n);
        bytes[self.value..self.value + n].copy_from_slice(&prefix[..n]);
        self.fields.count += 1;
    }
}

impl fmt::Write for TextField<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.fields.bytes.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The message text being written; see [`EncodedFields::message`].
pub struct MessageText<'a> {
    fields: &'a mut EncodedFields,
}

impl MessageText<'_> {
    /// Completes the message, cut to `max_bytes` like a text field.
    pub fn finish(self, max_bytes: usize) {
        let m = &mut self.fields.message;
        if m.len() > max_bytes {
            let mut cut = max_bytes;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            let dropped = m.len() - cut;
            m.truncate(cut);
            let _ = fmt::Write::write_fmt(m, format_args!("…[truncated {dropped} bytes]"));
        }
        self.fields.has_message = true;
    }
}

impl fmt::Write for MessageText<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.fields.message.push_str(s);
        Ok(())
    }
}

/// Writes `v` as a varint into `out`; returns the bytes used.
fn varint_into(out: &mut [u8; 10], mut v: u64) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        out[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

struct Appender<'a>(&'a mut Vec<u8>);

impl fmt::Write for Appender<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Json;
    use std::fmt::Write as _;

    #[test]
    fn encodes_like_fields_and_decodes_back() {
        let mut e = EncodedFields::new();
        e.push_i64("i", -3);
        e.push_u64("u", u64::MAX);
        e.push_f64("f", 0.5);
        e.push_bool("b", true);
        e.push_str("s", "héllo", 100);
        let mut t = e.text("j");
        t.write_str(r#"{"a":[1]}"#).unwrap();
        t.finish(true, 100);
        let mut m = e.message();
        write!(m, "message {}", 7).unwrap();
        m.finish(100);
        e.push_str("after", "x", 100);

        let mut want = Fields::new();
        want.set("i", Value::I64(-3));
        want.set("u", Value::U64(u64::MAX));
        want.set("f", Value::F64(0.5));
        want.set("b", Value::Bool(true));
        want.set("s", Value::Str("héllo".into()));
        want.set("j", Value::Json(Json::parse(r#"{"a":[1]}"#).unwrap()));
        want.set("after", Value::Str("x".into()));
        assert_eq!(e.count(), 7);
        assert_eq!(e.decode().unwrap(), want);
        assert_eq!(e.message_str(), Some("message 7"));
    }

    #[test]
    fn text_longer_than_127_bytes_gets_a_two_byte_length() {
        let mut e = EncodedFields::new();
        let long = "ab".repeat(200);
        let mut t = e.text("k");
        t.write_str(&long).unwrap();
        t.finish(false, 10_000);
        e.push_str("direct", &long, 10_000);
        let f = e.decode().unwrap();
        assert_eq!(f.get("k"), Some(&Value::Str(long.clone())));
        assert_eq!(f.get("direct"), Some(&Value::Str(long)));
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let mut e = EncodedFields::new();
        e.push_str("s", "héllo wörld", 2);
        let f = e.decode().unwrap();
        assert_eq!(
            f.get("s"),
            Some(&Value::Str("h…[truncated 12 bytes]".into()))
        );
        let mut t = e.text("j");
        t.write_str(r#"{"long":"json"}"#).unwrap();
        t.finish(true, 5);
        assert!(
            matches!(e.decode().unwrap().get("j"), Some(Value::Str(s)) if s.starts_with(r#"{"lon…"#))
        );
    }

    #[test]
    fn remove_keys_drops_entries_and_keeps_the_message() {
        let mut e = EncodedFields::new();
        e.push_i64("a", 1);
        let mut m = e.message();
        m.write_str("msg").unwrap();
        m.finish(100);
        e.push_str("b", "x", 100);
        e.push_i64("a", 2);
        assert_eq!(e.remove_keys(&["a"]), 2);
        assert_eq!(e.count(), 1);
        assert_eq!(e.message_str(), Some("msg"));
        let f = e.decode().unwrap();
        assert_eq!((f.len(), f.get("b")), (1, Some(&Value::Str("x".into()))));
    }

    #[test]
    fn append_concatenates_fields_not_messages() {
        let mut a = EncodedFields::new();
        a.push_i64("x", 1);
        let mut b = EncodedFields::new();
        let mut m = b.message();
        m.write_str("not copied").unwrap();
        m.finish(100);
        b.push_i64("x", 2);
        a.append(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(
            a.decode().unwrap().get("x"),
            Some(&Value::I64(2)),
            "last wins"
        );
        assert_eq!(a.message_str(), None);
    }
}
