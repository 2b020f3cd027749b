//! The record's JSON form: the contract for export, the HTTP API and `--format jsonl`.
//!
//! Every key is always present (absent values are `null`), in the order of SPEC §3,
//! so that JSON Lines and CSV exports have a fixed shape.

use std::sync::Arc;

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{RecordId, SpanId, TraceId};
use crate::keys;
use crate::record::{
    Kind, Level, Origin, Record, Resource, Scope, ScopeKey, Status, SCHEMA_VERSION,
};
use crate::time::Timestamp;
use crate::value::{Fields, Str};

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(keys::COLUMNS.len()))?;
        m.serialize_entry(keys::SCHEMA_VERSION, &SCHEMA_VERSION)?;
        m.serialize_entry(keys::ID, &self.id)?;
        m.serialize_entry(keys::SEQ, &self.seq)?;
        m.serialize_entry(keys::TS, &self.ts)?;
        m.serialize_entry(keys::KIND, self.kind.as_str())?;
        m.serialize_entry(keys::LEVEL, self.level.as_str())?;
        m.serialize_entry(keys::NAME, &self.name)?;
        m.serialize_entry(keys::TARGET, &self.target)?;
        m.serialize_entry(keys::MESSAGE, &self.message)?;
        m.serialize_entry(keys::TRACE_ID, &self.trace_id)?;
        m.serialize_entry(keys::SPAN_ID, &self.span_id)?;
        m.serialize_entry(keys::PARENT_SPAN_ID, &self.parent_span_id)?;
        for key in ScopeKey::ALL {
            m.serialize_entry(key.as_str(), &self.scope.get(*key))?;
        }
        m.serialize_entry(keys::SERVICE, &self.resource.service)?;
        m.serialize_entry(keys::HOST, &self.resource.host)?;
        m.serialize_entry(keys::PID, &self.resource.pid)?;
        m.serialize_entry(keys::FILE, &self.file)?;
        m.serialize_entry(keys::LINE, &self.line)?;
        m.serialize_entry(keys::CATEGORY, &self.category)?;
        m.serialize_entry(keys::STATUS, &self.status.map(Status::as_str))?;
        m.serialize_entry(keys::DURATION_NS, &self.duration_ns)?;
        m.serialize_entry(keys::BUSY_NS, &self.busy_ns)?;
        m.serialize_entry(keys::IDLE_NS, &self.idle_ns)?;
        m.serialize_entry(keys::FIELDS, &self.fields)?;
        m.serialize_entry(keys::ORIGIN, &self.origin.as_deref().map(OriginJson::from))?;
        m.end()
    }
}

/// The JSON form as parsed; converted into a [`Record`] with validation.
#[derive(Deserialize)]
struct RecordJson {
    #[serde(default)]
    schema_version: Option<u16>,
    id: String,
    #[serde(default)]
    seq: u64,
    ts: TsJson,
    kind: String,
    level: String,
    name: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    message: Option<String>,
    trace_id: String,
    #[serde(default)]
    span_id: Option<String>,
    #[serde(default)]
    parent_span_id: Option<String>,
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    step_id: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    surface: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    service: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    pid: u32,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    line: Option<u32>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    duration_ns: Option<u64>,
    #[serde(default)]
    busy_ns: Option<u64>,
    #[serde(default)]
    idle_ns: Option<u64>,
    #[serde(default)]
    fields: Fields,
    #[serde(default)]
    origin: Option<OriginJson>,
}

/// [`Origin`]'s JSON form.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OriginJson {
    transport: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl From<&Origin> for OriginJson {
    fn from(o: &Origin) -> Self {
        Self {
            transport: o.transport.clone(),
            uid: o.uid,
            pid: o.pid,
            token: o.token.clone(),
        }
    }
}

impl From<OriginJson> for Origin {
    fn from(o: OriginJson) -> Self {
        Self {
            transport: o.transport,
            uid: o.uid,
            pid: o.pid,
            token: o.token,
        }
    }
}

/// `ts` as RFC 3339 text or as integer nanoseconds.
#[derive(Deserialize)]
#[serde(untagged)]
enum TsJson {
    Text(String),
    Nanos(i64),
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let j = RecordJson::deserialize(d)?;
        if let Some(v) = j.schema_version {
            if v != SCHEMA_VERSION {
                return Err(D::Error::custom(format!(
                    "unsupported schema_version {v} (this build reads {SCHEMA_VERSION})"
                )));
            }
        }
        let ts = match j.ts {
            TsJson::Text(t) => Timestamp::parse_rfc3339(&t).map_err(D::Error::custom)?,
            TsJson::Nanos(n) => Timestamp(n),
        };
        let opt_span = |s: Option<String>| -> Result<Option<SpanId>, D::Error> {
            s.map(|s| SpanId::from_hex(&s).map_err(D::Error::custom))
                .transpose()
        };
        let mut scope = Scope::new();
        for (key, value) in [
            (ScopeKey::RunId, j.run_id),
            (ScopeKey::StepId, j.step_id),
            (ScopeKey::Tenant, j.tenant),
            (ScopeKey::Env, j.env),
            (ScopeKey::Project, j.project),
            (ScopeKey::App, j.app),
            (ScopeKey::Surface, j.surface),
            (ScopeKey::UserId, j.user_id),
            (ScopeKey::SessionId, j.session_id),
            (ScopeKey::RequestId, j.request_id),
        ] {
            scope.set(key, value);
        }
        Ok(Record {
            id: RecordId::from_hex(&j.id).map_err(D::Error::custom)?,
            seq: j.seq,
            ts,
            kind: j.kind.parse::<Kind>().map_err(D::Error::custom)?,
            level: j.level.parse::<Level>().map_err(D::Error::custom)?,
            name: Str::Owned(j.name),
            target: Str::Owned(j.target),
            message: j.message,
            trace_id: TraceId::from_hex(&j.trace_id).map_err(D::Error::custom)?,
            span_id: opt_span(j.span_id)?,
            parent_span_id: opt_span(j.parent_span_id)?,
            scope: Arc::new(scope),
            resource: Arc::new(Resource {
                service: j.service,
                host: j.host,
                pid: j.pid,
            }),
            file: j.file.map(Str::Owned),
            line: j.line,
            category: j.category.map(Str::Owned),
            status: j
                .status
                .map(|s| s.parse::<Status>().map_err(D::Error::custom))
                .transpose()?,
            duration_ns: j.duration_ns,
            busy_ns: j.busy_ns,
            idle_ns: j.idle_ns,
            fields: j.fields,
            origin: j.origin.map(|o| Arc::new(o.into())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::InstanceId;
    use crate::value::{Json, Value};

    fn sample() -> Record {
        let mut r = Record::new(
            RecordId::new(InstanceId::from_random(42), 7),
            Timestamp(1_795_291_200_123_456_000),
            Kind::SpanEnd,
            Level::Info,
            "llm.call",
        );
        r.seq = 123;
        r.target = "agent::llm".into();
        r.trace_id = TraceId::from_random(1, 2);
        r.span_id = Some(SpanId::from_random(3));
        r.scope = Arc::new(
            Scope::new()
                .with(ScopeKey::RunId, "run-1")
                .with(ScopeKey::Tenant, "acme"),
        );
        r.resource = Arc::new(Resource {
            service: "agent".into(),
            host: "h".into(),
            pid: 9,
        });
        r.file = Some("src/main.rs".into());
        r.line = Some(42);
        r.status = Some(Status::Error);
        r.duration_ns = Some(1234);
        r.fields.set("gen_ai.usage.input_tokens", Value::I64(12));
        r.fields.set(
            "messages",
            Value::Json(Json::parse(r#"[{"role":"user"}]"#).unwrap()),
        );
        r.origin = Some(Arc::new(Origin {
            uid: Some(1000),
            pid: Some(77),
            ..Origin::new(crate::record::transport::SOCKET)
        }));
        r
    }

    #[test]
    fn shape_matches_contract_order() {
        let v = serde_json::to_value(sample()).unwrap();
        let keys_seen: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = keys::COLUMNS.to_vec();
        want.sort_unstable();
        let mut got = keys_seen.clone();
        got.sort_unstable();
        assert_eq!(got, want);
        let text = serde_json::to_string(&sample()).unwrap();
        assert!(text.starts_with(r#"{"schema_version":1,"id":""#), "{text}");
        assert!(
            text.contains(r#""ts":"2026-11-21T20:00:00.123456Z","kind":"span_end","level":"INFO""#)
        );
        assert!(text.contains(r#""run_id":"run-1","step_id":null,"tenant":"acme""#));
        assert!(text.ends_with(
            r#""fields":{"gen_ai.usage.input_tokens":12,"messages":[{"role":"user"}]},"origin":{"transport":"socket","uid":1000,"pid":77}}"#
        ), "{text}");
    }

    #[test]
    fn json_round_trip() {
        let r = sample();
        let back: Record = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn rejects_bad_ids_and_words() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["kind"] = "spanish".into();
        assert!(serde_json::from_value::<Record>(v.clone()).is_err());
        v["kind"] = "event".into();
        v["trace_id"] = "xyz".into();
        let err = serde_json::from_value::<Record>(v).unwrap_err().to_string();
        assert!(err.contains("trace id"), "{err}");
    }
}
