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
/// `/\host` name other sites).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") => {
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

/// Whether a browser says this form was sent from another site.
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| s != "same-origin" && s != "none")
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
