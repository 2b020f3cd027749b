//! Authentication, shared by every transport and the read API: the shared token
//! (`token` in the configuration, an admin's) and API tokens (`logbook token create`,
//! each with a role and, for viewers, a scope; only their SHA-256 is stored), compared
//! in constant time; and failures recorded without letting whoever fails
//! write the audit trail. Failures are counted per peer (its uid over the socket; its
//! address over the network) and overall, in windows of [`WINDOW`]: the first failure of
//! a window is audited at once, the rest of the window in one summary record when it
//! ends, so a flood of wrong tokens writes at most two bounded records a window. No
//! record holds anything the client sent (its hello's service, host, token), only
//! the peer as the collector saw it and the counts. The log line is limited the same
//! way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logbook_proto::{Json, Timestamp, Value};
use sha2::{Digest, Sha256};
use tracing::warn;

use super::{limit, Admission};
use crate::audit::{admin_record, random_bytes};
use crate::store::{ApiToken, Role, StoreError, StoreReader, Visibility};

/// How long one window of failures lasts.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Peers counted one by one in a window; the rest are counted together.
const MAX_PEERS: usize = 32;
/// The name of the audit record of failed authentications: `logbook.auth_failures`.
pub const AUTH_FAILURES_ACTION: &str = "auth_failures";

/// How long whether any API token exists is remembered.
const TOKENS_RECHECK: Duration = Duration::from_secs(1);
/// The prefix of API token texts: `lbk_<id>_<secret>`.
pub const TOKEN_PREFIX: &str = "lbk_";
/// What the subject of a session signed in with the shared token starts with (API
/// token ids are hex).
pub const SHARED_SESSION: &str = "shared";

/// The API tokens not revoked, by id.
type TokenTable = HashMap<String, ApiToken>;

/// Who made a request, once authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token's name (`shared token` for the configured one; `anonymous` when no
    /// token is configured).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// What it may read.
    pub visibility: Visibility,
    /// No token was presented or needed (whatever a token may be named).
    pub anonymous: bool,
}

impl Caller {
    /// Anyone, when no token is configured and the listener is loopback only.
    pub fn anonymous() -> Self {
        Self {
            name: "anonymous".into(),
            role: Role::Admin,
            visibility: Visibility::ALL,
            anonymous: true,
        }
    }

    /// Whether it is [`Caller::anonymous`]: no token was needed.
    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }

    /// Whether it may send records.
    pub fn may_ingest(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Ingest)
    }

    /// Whether it may read (within its visibility).
    pub fn may_read(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Viewer)
    }

    /// Whether it may do everything.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// A new API token: its text, shown once, and what is stored of it.
pub fn new_token(
    name: &str,
    role: Role,
    visibility: Visibility,
) -> Result<(String, ApiToken), StoreError> {
    let random = random_bytes()?;
    let id = crate::audit::to_hex(&random[..6]);
    let text = format!(
        "{TOKEN_PREFIX}{id}_{}",
        crate::audit::to_hex(&random_bytes()?)
    );
    let token = ApiToken {
        id,
        name: name.to_owned(),
        role,
        tenant: visibility.tenant,
        user_id: visibility.user_id,
        hash: Sha256::digest(text.as_bytes()).into(),
        created: Timestamp::now(),
        revoked: None,
    };
    Ok((text, token))
}

/// The id part of an API token's text.
fn token_id(text: &str) -> Option<&str> {
    let rest = text.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some(id)
}

/// The token check and the failures it counts. One per collector, shared by its
/// transports and the API.
pub struct Authenticator {
    /// SHA-256 of the shared token, if one is configured.
    token: Option<[u8; 32]>,
    /// Where API tokens are found.
    tokens: Option<Arc<dyn StoreReader>>,
    /// The API tokens not revoked, by id, and when they were read: read again at
    /// most once a second, so a request costs no store read.
    table: Mutex<Option<(Instant, Arc<TokenTable>)>>,
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
            tokens: None,
            table: Mutex::new(None),
            admission,
            window: Mutex::default(),
        }
    }

    /// Also accepts the API tokens stored in `store` (and, once one exists, requires
    /// a token of HTTP requests).
    pub fn with_api_tokens(mut self, store: Arc<dyn StoreReader>) -> Self {
        self.tokens = Some(store);
        self
    }

    /// Whether a socket client's hello may send records: always when no shared token
    /// is configured (the socket's file mode guards it); else with the shared token or
    /// an API token of the admin or ingest role. Takes the same time whatever the
    /// tokens' lengths: their digests are compared, every byte.
    pub fn check(&self, presented: Option<&str>) -> bool {
        self.token.is_none()
            || token_matches(self.token.as_ref(), presented)
            || self.api_token(presented).is_some_and(|c| c.may_ingest())
    }

    /// Whether a token is configured: the shared one, or an API token not revoked
    /// (one created or revoked while the collector runs counts within a second).
    /// `None` when the store cannot say.
    pub fn tokens_exist(&self) -> Option<bool> {
        if self.token.is_some() {
            return Some(true);
        }
        if self.tokens.is_none() {
            return Some(false);
        }
        self.table().map(|t| !t.is_empty())
    }

    /// The API tokens not revoked, read again when a second old. `None` when the
    /// store cannot be read (and nothing was read before).
    fn table(&self) -> Option<Arc<TokenTable>> {
        let store = self.tokens.as_ref()?;
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, t)) = table.as_ref() {
            if at.elapsed() < TOKENS_RECHECK {
                return Some(Arc::clone(t));
            }
        }
        match store.tokens() {
            Ok(all) => {
                let live: TokenTable = all
                    .into_iter()
                    .filter(|t| t.revoked.is_none())
                    .map(|t| (t.id.clone(), t))
                    .collect();
                let live = Arc::new(live);
                *table = Some((Instant::now(), Arc::clone(&live)));
                Some(live)
            }
            Err(e) => {
                // Tried again in a second, not at every request.
                warn!(error = %e, "Could not read the API tokens; keeping the last known ones.");
                let last = table.take().map(|(_, t)| t);
                if let Some(t) = &last {
                    *table = Some((Instant::now(), Arc::clone(t)));
                }
                last
            }
        }
    }

    /// Who presented `presented` over HTTP: the holder of an API token, of the shared
    /// token (an admin), or, when `anonymous` allows it (a loopback listener) and no
    /// token is configured, anyone; `None` otherwise. Never anonymous when the store
    /// cannot say whether tokens exist.
    pub fn authenticate(&self, presented: Option<&str>, anonymous: bool) -> Option<Caller> {
        if let Some(caller) = self.api_token(presented) {
            return Some(caller);
        }
        if self.token.is_some() && token_matches(self.token.as_ref(), presented) {
            return Some(Caller {
                name: "shared token".into(),
                role: Role::Admin,
                visibility: Visibility::ALL,
                anonymous: false,
            });
        }
        (anonymous && self.tokens_exist() == Some(false)).then(Caller::anonymous)
    }

    /// The caller a signed-in session names: the shared token's subject (while that
    /// token is configured), else an API token's id (while it is not revoked); `None`
    /// for anything else.
    pub fn session_caller(&self, subject: &str) -> Option<Caller> {
        if subject.starts_with(SHARED_SESSION) {
            return (Some(subject) == self.shared_subject().as_deref()).then(|| Caller {
                name: "shared token".into(),
                role: Role::Admin,
                visibility: Visibility::ALL,
                anonymous: false,
            });
        }
        let table = self.table()?;
        Some(Self::caller_of(table.get(subject)?))
    }

    /// The subject of a session of the holder of `presented`: its API token's id, or
    /// the shared token's subject; `None` when it is neither.
    pub fn session_subject(&self, presented: &str) -> Option<String> {
        if self.api_token(Some(presented)).is_some() {
            return token_id(presented).map(str::to_owned);
        }
        if token_matches(self.token.as_ref(), Some(presented)) {
            return self.shared_subject();
        }
        None
    }

    /// The subject of sessions of the shared token: `shared-` and a digest of the
    /// token's digest, so that changing the token ends them.
    fn shared_subject(&self) -> Option<String> {
        let digest = Sha256::digest(self.token?);
        Some(format!(
            "{SHARED_SESSION}-{}",
            crate::audit::to_hex(&digest[..6])
        ))
    }

    fn caller_of(stored: &ApiToken) -> Caller {
        Caller {
            name: stored.name.clone(),
            role: stored.role,
            visibility: Visibility {
                tenant: stored.tenant.clone(),
                user_id: stored.user_id.clone(),
            },
            anonymous: false,
        }
    }

    /// The caller an API token names, if it is stored, not revoked, and its digest
    /// matches.
    fn api_token(&self, presented: Option<&str>) -> Option<Caller> {
        let text = presented?;
        let id = token_id(text)?;
        let table = self.table()?;
        let stored = table.get(id)?;
        if !token_matches(Some(&stored.hash), Some(text)) {
            return None;
        }
        Some(Self::caller_of(stored))
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
    fn token_texts_carry_their_id() {
        let (text, token) = new_token("ci", Role::Viewer, Visibility::ALL).unwrap();
        assert_eq!(token_id(&text), Some(token.id.as_str()));
        assert_eq!(token.id.len(), 12);
        assert!(check(Some(&text), Some(&text)));
        assert_eq!(
            token.hash,
            <[u8; 32]>::from(Sha256::digest(text.as_bytes()))
        );
        for bad in ["lbk_", "lbk__x", "lbk_abc_", "nope", "lbk_abc"] {
            assert_eq!(token_id(bad), None, "{bad}");
        }
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
