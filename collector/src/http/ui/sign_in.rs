//! `/sign-in` (a token in, a session cookie out) and `/sign-out`.

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::session;
use super::{render, UiError};
use crate::http::HttpContext;

#[derive(Template)]
#[template(path = "ui/sign_in.html")]
struct SignIn {
    next: String,
    error: String,
}

/// Where to go once signed in: a path of this site, nothing else (`//host` and
/// `/\host` name other sites, and browsers drop tabs and newlines from a `Location`
/// and read `\` as `/`, so a path holding any of them could name another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains(|c: char| c == '\\' || c.is_control()) =>
        {
            n.to_owned()
        }
        _ => "/runs".to_owned(),
    }
}

/// The sign-in form.
pub(super) async fn form(RawQuery(q): RawQuery) -> Response {
    let next = form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned());
    render(&SignIn {
        next: safe_next(next.as_deref()),
        error: String::new(),
    })
}

/// Whether this form was sent from another site: the browser says so, or the form's
/// `Origin` is not this host.
fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let fetch_site = text("sec-fetch-site").is_some_and(|s| s != "same-origin" && s != "none");
    let other_origin = match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_none_or(|(_, authority)| authority.trim_end_matches('/') != host),
        (Some(_), None) => true,
        (None, _) => false,
    };
    fetch_site || other_origin
}

/// Checks the token, sets the session cookie, goes on to `next`. A wrong token is
/// counted and audited as any failed authentication is.
pub(super) async fn submit(
    State(cx): State<Arc<HttpContext>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut token = None;
    let mut next = None;
    for (k, v) in form_urlencoded::parse(&body) {
        match &*k {
            "token" => token = Some(v.trim().to_owned()),
            "next" => next = Some(v.into_owned()),
            _ => {}
        }
    }
    let next = safe_next(next.as_deref());
    if cross_site(&headers) {
        return UiError::page(
            StatusCode::FORBIDDEN,
            "Not from this site",
            "A sign-in must come from this site's own form.",
        )
        .into_response();
    }
    let subject = token
        .as_deref()
        .filter(|t| !t.is_empty())
        .and_then(|t| cx.auth.session_subject(t));
    // A token that may only send records opens no page: refused here, not after.
    let subject = match subject {
        Some(s) if cx.auth.session_caller(&s).is_some_and(|c| c.may_read()) => Some(s),
        Some(_) => {
            let mut r = render(&SignIn {
                next,
                error: "That token may only send records; sign in with a viewer's or an admin's."
                    .into(),
            });
            *r.status_mut() = StatusCode::FORBIDDEN;
            return r;
        }
        None => None,
    };
    let Some(subject) = subject else {
        cx.auth.failed(&peer.ip().to_string()).await;
        let mut r = render(&SignIn {
            next,
            error: "That token is not valid (or was revoked).".into(),
        });
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    };
    let mut r = Redirect::to(&next).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(&cx.sessions.issue(&subject)),
    );
    r
}

/// Ends the session (a POST with the CSRF token, so no page of another site can sign
/// the reader out).
pub(super) async fn sign_out(
    State(cx): State<Arc<HttpContext>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let csrf = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    if !cx.sessions.csrf_ok(&headers, csrf.as_deref()) {
        return UiError::page(
            StatusCode::FORBIDDEN,
            "Expired form",
            "This form is out of date; reload the page and try again.",
        )
        .into_response();
    }
    let mut r = Redirect::to("/sign-in").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_a_path_of_this_site() {
        assert_eq!(safe_next(Some("/runs?status=error")), "/runs?status=error");
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/x",
            "https://evil.example",
            "evil",
        ] {
            assert_eq!(safe_next(Some(bad)), "/runs", "{bad:?}");
        }
    }

    #[test]
    fn a_form_from_another_origin_is_cross_site() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, axum::http::HeaderValue::from_static(v));
            }
            m
        };
        let host = ("host", "127.0.0.1:7070");
        assert!(!cross_site(&h(&[
            host,
            ("origin", "http://127.0.0.1:7070")
        ])));
        assert!(cross_site(&h(&[host, ("origin", "http://evil.example")])));
        assert!(cross_site(&h(&[host, ("origin", "null")])));
        assert!(cross_site(&h(&[("sec-fetch-site", "cross-site")])));
        assert!(!cross_site(&h(&[host])));
    }
}
