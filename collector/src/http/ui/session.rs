//! Sign-in for browsers: a token entered once on `/sign-in` becomes a session cookie
//! (`logbook_session`: HttpOnly, SameSite=Strict, 12 hours), which the pages, the
//! read API and the live stream accept in place of `Authorization: Bearer`. The cookie
//! names the token (its id, or `shared` for the configured one) and its expiry, signed
//! with HMAC-SHA256 under a key derived from the collector's chain key: it survives a
//! restart, holds no secret, and dies with its token (a revoked token's sessions are
//! refused at the next request).
//!
//! State-changing requests made with the cookie carry a CSRF token: a hidden `csrf`
//! field in forms, `X-CSRF-Token` from scripts. It is an HMAC of the session under the
//! same key, so it needs no server state; without a session (no token configured,
//! local clients only) it is bound to the literal `anonymous`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, HeaderValue};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::admission::auth::{Authenticator, Caller};

/// The cookie's name.
pub const COOKIE: &str = "logbook_session";
/// How long a session lasts.
pub const LIFETIME_SECS: u64 = 12 * 3600;
/// The header scripts send the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Signs and checks sessions and CSRF tokens.
#[derive(Clone)]
pub struct Sessions {
    key: [u8; 32],
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions { key: **REDACTED** }")
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Sessions {
    /// Sessions signed with `key`.
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, parts: &[&[u8]]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        for p in parts {
            mac.update(&(p.len() as u64).to_le_bytes());
            mac.update(p);
        }
        crate::audit::to_hex(&mac.finalize().into_bytes())
    }

    /// The cookie value of a new session of the token `subject` (an API token's id,
    /// or `shared`).
    pub fn issue(&self, subject: &str) -> String {
        let expires = now_secs() + LIFETIME_SECS;
        let mac = self.mac(&[b"session", subject.as_bytes(), &expires.to_le_bytes()]);
        format!("v1.{subject}.{expires}.{mac}")
    }

    /// The subject of a session cookie's value, if it is signed and not expired.
    fn subject<'a>(&self, value: &'a str) -> Option<&'a str> {
        let rest = value.strip_prefix("v1.")?;
        let (rest, mac) = rest.rsplit_once('.')?;
        let (subject, expires) = rest.rsplit_once('.')?;
        let expires: u64 = expires.parse().ok()?;
        let expected = self.mac(&[b"session", subject.as_bytes(), &expires.to_le_bytes()]);
        (constant_eq(expected.as_bytes(), mac.as_bytes()) && expires > now_secs())
            .then_some(subject)
    }

    /// The caller a request's session cookie names, if it has a valid one whose
    /// token still stands.
    pub fn caller(&self, headers: &HeaderMap, auth: &Authenticator) -> Option<Caller> {
        let subject = self.subject(cookie(headers)?)?;
        auth.session_caller(subject)
    }

    /// The CSRF token of the request's session (or of `anonymous`, without one).
    pub fn csrf(&self, headers: &HeaderMap) -> String {
        let session = cookie(headers).and_then(|c| self.subject(c).map(|_| c));
        self.mac(&[b"csrf", session.unwrap_or("anonymous").as_bytes()])
    }

    /// Whether `presented` is the request's CSRF token.
    pub fn csrf_ok(&self, headers: &HeaderMap, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| constant_eq(self.csrf(headers).as_bytes(), p.as_bytes()))
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of the session cookie a request carries, if any.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(value)
        })
}

/// The `Set-Cookie` header of a session.
pub fn set_cookie(value: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; Max-Age={LIFETIME_SECS}; HttpOnly; SameSite=Strict"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` header that ends a session.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("logbook_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {COOKIE}={cookie}")).unwrap(),
        );
        h
    }

    #[test]
    fn a_session_is_its_signer_s_and_unaltered() {
        let s = Sessions::new([7; 32]);
        let value = s.issue("abc123");
        assert_eq!(s.subject(&value), Some("abc123"));
        assert_eq!(cookie(&headers(&value)), Some(value.as_str()));
        // Another key, another subject, a later expiry: refused.
        assert_eq!(Sessions::new([8; 32]).subject(&value), None);
        let forged = value.replacen("abc123", "shared", 1);
        assert_eq!(s.subject(&forged), None);
        let parts: Vec<&str> = value.split('.').collect();
        let later = format!(
            "v1.{}.{}.{}",
            parts[1],
            parts[2].parse::<u64>().unwrap() + 1,
            parts[3]
        );
        assert_eq!(s.subject(&later), None);
        assert_eq!(s.subject("v1.x.1.00"), None);
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let s = Sessions::new([7; 32]);
        let a = headers(&s.issue("a"));
        let b = headers(&s.issue("b"));
        let token = s.csrf(&a);
        assert!(s.csrf_ok(&a, Some(&token)));
        assert!(!s.csrf_ok(&b, Some(&token)));
        assert!(!s.csrf_ok(&a, None));
        assert!(!s.csrf_ok(&HeaderMap::new(), Some(&token)));
        let anonymous = s.csrf(&HeaderMap::new());
        assert!(s.csrf_ok(&HeaderMap::new(), Some(&anonymous)));
    }
}
