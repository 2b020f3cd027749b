//! Typed field values.

use std::borrow::Cow;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A string that is usually `&'static` (names, targets and field keys come from
/// `tracing` callsite metadata) and owned only when it had to be decoded.
pub type Str = Cow<'static, str>;

/// Validated JSON text, kept as text: nested objects and arrays in a field.
#[derive(Clone)]
pub struct Json(Box<RawValue>);

impl Json {
    /// Validates `text` as one JSON value.
    pub fn parse(text: impl Into<String>) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text.into()).map(Self)
    }

    /// Serializes `value`.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The JSON parsed into a tree.
    pub fn to_value(&self) -> serde_json::Value {
        // Validated at construction, so parsing cannot fail.
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value of one field.
#[derive(Clone, Debug)]
pub enum Value {
    /// Text (including `Display`/`Debug` renderings of other types).
    Str(String),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer too large for `I64`, or recorded as `u64`.
    U64(u64),
    /// A float.
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// Nested JSON (objects, arrays, null).
    Json(Json),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Str(a), Self::Str(b)) => a == b,
            (Self::I64(a), Self::I64(b)) => a == b,
            (Self::U64(a), Self::U64(b)) => a == b,
            // Bitwise, so NaN equals itself and round trips compare equal.
            (Self::F64(a), Self::F64(b)) => a.to_bits() == b.to_bits(),
            (Self::Bool(a), Self::Bool(b)) => a == b,
            (Self::Json(a), Self::Json(b)) => a == b,
            _ => false,
        }
    }
}

impl Value {
    /// The value as text if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an `i64` if it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::I64(v) => Some(v),
            Self::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a `u64` if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::I64(v) => u64::try_from(v).ok(),
            Self::U64(v) => Some(v),
            _ => None,
        }
    }

    /// Converts a JSON tree: scalars become typed values, the rest nested JSON.
    pub fn from_json(v: serde_json::Value) -> Self {
        use serde_json::Value as J;
        match v {
            J::String(s) => Self::Str(s),
            J::Bool(b) => Self::Bool(b),
            J::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Self::I64(i)
                } else if let Some(u) = n.as_u64() {
                    Self::U64(u)
                } else {
                    Self::F64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            other => match Json::from_serialize(&other) {
                Ok(j) => Self::Json(j),
                Err(_) => Self::Str(other.to_string()),
            },
        }
    }

    /// Converts one JSON value given as text: scalars become typed values; objects,
    /// arrays and null stay nested JSON exactly as written (key order included).
    pub fn from_raw(raw: Box<RawValue>) -> Self {
        match raw.get().as_bytes().first() {
            Some(b'{' | b'[' | b'n') => Self::Json(Json(raw)),
            _ => match serde_json::from_str::<serde_json::Value>(raw.get()) {
                Ok(v) => Self::from_json(v),
                Err(_) => Self::Json(Json(raw)),
            },
        }
    }

    /// Appends a short human-readable rendering (strings unquoted).
    pub fn write_display(&self, out: &mut String) {
        use fmt::Write;
        let _ = match self {
            Self::Str(s) => {
                out.push_str(s);
                Ok(())
            }
            Self::I64(v) => write!(out, "{v}"),
            Self::U64(v) => write!(out, "{v}"),
            Self::F64(v) => write!(out, "{v}"),
            Self::Bool(v) => write!(out, "{v}"),
            Self::Json(j) => {
                out.push_str(j.as_str());
                Ok(())
            }
        };
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write_display(&mut s);
        f.write_str(&s)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Str(v) => s.serialize_str(v),
            Self::I64(v) => s.serialize_i64(*v),
            Self::U64(v) => s.serialize_u64(*v),
            // JSON has no NaN or infinities: keep them as text rather than null.
            Self::F64(v) if !v.is_finite() => s.serialize_str(&v.to_string()),
            Self::F64(v) => s.serialize_f64(*v),
            Self::Bool(v) => s.serialize_bool(*v),
            Self::Json(j) => j.0.serialize(s),
        }
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Str(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::I64(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Self::U64(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Self::F64(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

/// A record's fields in the order they were first recorded; keys are unique.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fields(Vec<(Str, Value)>);

impl Fields {
    /// No fields.
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Room for `n` fields.
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    /// Sets `key`, replacing an earlier value of the same key in place.
    pub fn set(&mut self, key: impl Into<Str>, value: Value) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Appends without checking for an existing key: for producers that know keys
    /// are unique (a callsite's field set, a decoded record).
    pub fn push_unique(&mut self, key: impl Into<Str>, value: Value) {
        self.0.push((key.into(), value));
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fields in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// Mutable access to the values, in order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Value)> {
        self.0.iter_mut().map(|(k, v)| (&**k, v))
    }

    /// Keeps only the fields for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &Value) -> bool) {
        self.0.retain(|(k, v)| keep(k, v));
    }

    /// Merges `later` over these fields: same keys are replaced, new keys appended.
    pub fn merge(&mut self, later: Fields) {
        for (k, v) in later.0 {
            self.set(k, v);
        }
    }
}

impl FromIterator<(Str, Value)> for Fields {
    fn from_iter<I: IntoIterator<Item = (Str, Value)>>(iter: I) -> Self {
        let mut f = Fields::new();
        for (k, v) in iter {
            f.set(k, v);
        }
        f
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k.as_ref(), v)?;
        }
        map.end()
    }
}

/// Reads a JSON object in document order (a repeated key: the last wins).
impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut out = Fields::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    out.set(Str::Owned(k), Value::from_raw(v));
                }
                Ok(out)
            }
        }
        d.deserialize_map(FieldsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserializes_in_document_order() {
        let text = r#"{"z":1,"a":"x","m":{"role":"user","content":[1]},"f":0.5,"b":true,"u":18446744073709551615,"n":null}"#;
        let f: Fields = serde_json::from_str(text).unwrap();
        assert_eq!(
            f.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["z", "a", "m", "f", "b", "u", "n"]
        );
        assert_eq!(f.get("f"), Some(&Value::F64(0.5)));
        assert_eq!(f.get("u"), Some(&Value::U64(u64::MAX)));
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            text,
            "nested key order survives"
        );
    }

    #[test]
    fn set_replaces_in_place() {
        let mut f = Fields::new();
        f.set("a", 1i64.into());
        f.set("b", 2i64.into());
        f.set("a", "x".into());
        assert_eq!(f.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(f.get("a"), Some(&Value::Str("x".into())));
    }

    #[test]
    fn serializes_typed_and_nested() {
        let mut f = Fields::new();
        f.set("s", "text".into());
        f.set("n", (-3i64).into());
        f.set("u", u64::MAX.into());
        f.set("x", 1.5f64.into());
        f.set("nan", f64::NAN.into());
        f.set("ok", true.into());
        f.set("j", Value::Json(Json::parse(r#"{"a":[1,2]}"#).unwrap()));
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"s":"text","n":-3,"u":18446744073709551615,"x":1.5,"nan":"NaN","ok":true,"j":{"a":[1,2]}}"#
        );
    }

    #[test]
    fn json_must_be_valid() {
        assert!(Json::parse("{").is_err());
        assert!(Json::parse("[1, 2]").is_ok());
    }

    #[test]
    fn from_json_keeps_types() {
        let v: serde_json::Value =
            serde_json::from_str(r#"[1, -1, 18446744073709551615, 0.5, "s", true, null, {"a":1}]"#)
                .unwrap();
        let got: Vec<Value> = v
            .as_array()
            .unwrap()
            .iter()
            .cloned()
            .map(Value::from_json)
            .collect();
        assert_eq!(got[0], Value::I64(1));
        assert_eq!(got[1], Value::I64(-1));
        assert_eq!(got[2], Value::U64(u64::MAX));
        assert_eq!(got[3], Value::F64(0.5));
        assert_eq!(got[4], Value::Str("s".into()));
        assert_eq!(got[5], Value::Bool(true));
        assert!(matches!(&got[6], Value::Json(j) if j.as_str() == "null"));
        assert!(matches!(&got[7], Value::Json(j) if j.as_str() == r#"{"a":1}"#));
    }
}
