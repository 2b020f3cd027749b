//! Authentication on the admission path, shared by every transport: the shared token
//! compared in constant time, and failures recorded without letting whoever fails
//! write the audit trail. Failures are counted per peer (its uid over the socket; its
//! address over the network) and overall, in windows of [`WINDOW`]: the first failure of
//! a window is audited at once, the rest of the window in one summary record when it
//! ends, so a flood of wrong tokens writes at most two bounded records a window. No
//! record holds anything the client sent (its hello's service, host, token), only
//! the peer as the collector saw it and the counts. The log line is limited the same
//! way.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use logbook_proto::{Json, Timestamp, Value};
use sha2::{Digest, Sha256};
use tracing::warn;

use super::{limit, Admission};
use crate::audit::admin_record;

/// How long one window of failures lasts.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Peers counted one by one in a window; the rest are counted together.
const MAX_PEERS: usize = 32;
/// The name of the audit record of failed authentications: `logbook.auth_failures`.
pub const AUTH_FAILURES_ACTION: &str = "auth_failures";

/// The token check and the failures it counts. One per collector, shared by its
/// transports.
pub struct Authenticator {
    /// SHA-256 of the token, if one is required.
    token: Option<[u8; 32]>,
    admission: Admission,
    window: Mutex<Window>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("token", &self.token.map(|_| "**REDACTED**"))
            .finish_non_exhaustive()
    }
}

/// Failures since the window opened.
#[derive(Debug, Default)]
struct Window {
    opened: Option<(Instant, Timestamp)>,
    /// Failures not yet in an audit record, by peer.
    peers: HashMap<String, u64>,
    /// Failures of peers beyond [`MAX_PEERS`].
    others: u64,
}

impl Window {
    fn pending(&self) -> u64 {
        self.peers.values().sum::<u64>() + self.others
    }
}

impl Authenticator {
    /// Requires `token`, if any, of clients; audits failures through `admission`.
    pub fn new(token: Option<&str>, admission: Admission) -> Self {
        Self {
            token: token.map(|t| Sha256::digest(t.as_bytes()).into()),
            admission,
            window: Mutex::default(),
        }
    }

    /// Whether `presented` is the token (always, when none is required). Takes the
    /// same time whatever either's length: their digests are compared, every byte.
    pub fn check(&self, presented: Option<&str>) -> bool {
        token_matches(self.token.as_ref(), presented)
    }

    /// Counts a failure by `peer` (as the transport identified it: `uid 1000`,
    /// `10.0.0.7`): the window's first is audited at once, the others with the window.
    pub async fn failed(&self, peer: &str) {
        self.admission.count(limit::AUTH_FAILED, 1);
        let (first, ended) = {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            let ended = match w.opened {
                Some((at, _)) if at.elapsed() >= WINDOW => Some(std::mem::take(&mut *w)),
                _ => None,
            };
            let first = w.opened.is_none();
            if first {
                w.opened = Some((Instant::now(), Timestamp::now()));
            } else if w.peers.contains_key(peer) || w.peers.len() < MAX_PEERS {
                *w.peers.entry(peer.to_owned()).or_default() += 1;
            } else {
                w.others += 1;
            }
            (first, ended)
        };
        if let Some(ended) = ended {
            self.summarize(ended).await;
        }
        if first {
            warn!(
                %peer,
                "A client failed authentication (missing or wrong token); further failures are counted and reported once a minute."
            );
            let record = admin_record(
                AUTH_FAILURES_ACTION,
                format!("A client ({peer}) presented a missing or wrong token."),
                vec![
                    ("failures", Value::U64(1)),
                    ("peers", peers_json(&[(peer.to_owned(), 1)], 0)),
                ],
            );
            let _ = self.admission.audit(record).await;
        }
    }

    /// Audits the failures of a window that has ended (or of the current one, if
    /// `now`: at shutdown).
    pub async fn flush(&self, now: bool) {
        let ended = {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            match w.opened {
                Some((at, _)) if now || at.elapsed() >= WINDOW => Some(std::mem::take(&mut *w)),
                _ => None,
            }
        };
        if let Some(ended) = ended {
            self.summarize(ended).await;
        }
    }

    async fn summarize(&self, w: Window) {
        let failures = w.pending();
        let Some((_, since)) = w.opened.filter(|_| failures > 0) else {
            return;
        };
        let mut peers: Vec<(String, u64)> = w.peers.into_iter().collect();
        peers.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        warn!(
            failures,
            peers = peers.len() + usize::from(w.others > 0),
            "More clients failed authentication since the first one reported."
        );
        let record = admin_record(
            AUTH_FAILURES_ACTION,
            format!(
                "{failures} more failed authentications since {since}, from {} peers.",
                peers.len() + usize::from(w.others > 0)
            ),
            vec![
                ("failures", Value::U64(failures)),
                ("peers", peers_json(&peers, w.others)),
                ("since", Value::Str(since.to_string())),
            ],
        );
        let _ = self.admission.audit(record).await;
    }
}

/// Whether `presented` matches the token whose SHA-256 is `expected` (any, if none is
/// expected), comparing every byte of the digests whatever the lengths.
fn token_matches(expected: Option<&[u8; 32]>, presented: Option<&str>) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    let got: [u8; 32] = Sha256::digest(presented.unwrap_or("").as_bytes()).into();
    let diff = expected
        .iter()
        .zip(&got)
        .fold(u8::from(presented.is_none()), |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

/// `[{"peer":"uid 1000","failures":3},…,{"peer":"others","failures":9}]`.
fn peers_json(peers: &[(String, u64)], others: u64) -> Value {
    let mut list: Vec<serde_json::Value> = peers
        .iter()
        .map(|(p, n)| serde_json::json!({"peer": p, "failures": n}))
        .collect();
    if others > 0 {
        list.push(serde_json::json!({"peer": "others", "failures": others}));
    }
    Json::from_serialize(&list).map_or(Value::Bool(false), Value::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(token: Option<&str>, presented: Option<&str>) -> bool {
        let expected: Option<[u8; 32]> = token.map(|t| Sha256::digest(t.as_bytes()).into());
        token_matches(expected.as_ref(), presented)
    }

    #[test]
    fn the_token_must_match_exactly() {
        assert!(check(None, None));
        assert!(check(Some("s3cret"), Some("s3cret")));
        assert!(!check(Some("s3cret"), Some("s3cre")));
        assert!(!check(Some("s3cret"), Some("s3cret!")));
        assert!(!check(Some("s3cret"), None));
        assert!(!check(Some(""), None), "no token is not the empty token");
        assert!(check(Some(""), Some("")));
    }

    #[test]
    fn peers_are_listed_with_their_counts() {
        let v = peers_json(&[("uid 1".into(), 2)], 3);
        assert!(
            matches!(&v, Value::Json(j) if j.as_str() == r#"[{"failures":2,"peer":"uid 1"},{"failures":3,"peer":"others"}]"#),
            "{v:?}"
        );
    }
}
