//! No quadratic behaviour: 1 MiB strings built from each detector's trigger, repeated,
//! redact in time proportional to their length.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use logbook_proto::{Fields, Value};
use logbook_redact::{Counts, Redactor};

const MIB: usize = 1 << 20;

/// Pieces repeated to fill a string: each trigger without (or with) what completes it.
const PIECES: &[&str] = &[
    "a",
    " ",
    "1234 ",
    "4111 1111 1111 1111 ",
    "1-",
    "123-45-6789 ",
    "a@",
    "a@b.",
    "ann@example.com ",
    "eyJ",
    "eyJabcdef.eyJ",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----BEGIN ",
    "Bearer ",
    "Bearer x",
    "Basic ",
    "sk-",
    "sk-aaaaaaaaaaaaaaaaaaaaaaaaa1",
    "ghp_",
    "AKIA",
    "DE89 ",
    "DE89",
    "password=",
    "password=x",
    "password: \"",
    "\\\"password\\\":\\\"",
    "Cookie: ",
    "Authorization: Bearer ",
    "=",
    ":",
    "token",
    "{",
    "[",
    "{\"password\":",
];

fn redact_both(r: &Redactor, s: &str) -> Duration {
    let start = Instant::now();
    let mut counts = Counts::new();
    let _ = r.redact_text(s, &mut counts);
    let mut fields = Fields::new();
    fields.set("detail", Value::Str(s.to_owned()));
    r.redact_fields(&mut fields, &mut counts);
    start.elapsed()
}

fn filled(piece: &str, len: usize) -> String {
    let mut s = piece.repeat(len / piece.len() + 1);
    s.truncate(len);
    s
}

#[test]
fn long_strings_redact_in_linear_time() {
    let r = Redactor::builtin();
    for piece in PIECES {
        // The best of two runs, to be fair to a busy machine.
        let small = filled(piece, MIB / 8);
        let large = filled(piece, MIB);
        let t_small = redact_both(&r, &small).min(redact_both(&r, &small));
        let t_large = redact_both(&r, &large).min(redact_both(&r, &large));
        println!("{piece:?}: 128 KiB {t_small:?}, 1 MiB {t_large:?}");
        // Linear: ~8x. Quadratic would be ~64x.
        assert!(
            t_large < t_small * 24 + Duration::from_millis(50),
            "{piece:?}: 128 KiB took {t_small:?}, 1 MiB took {t_large:?}"
        );
    }
}

#[test]
fn deeply_nested_json_text_is_handled() {
    let r = Redactor::builtin();
    let deep = format!("{}\"password=x\"{}", "[".repeat(10_000), "]".repeat(10_000));
    let mut counts = Counts::new();
    let out = r
        .redact_text(&deep, &mut counts)
        .expect("the secret is found");
    assert!(!out.contains("password=x"));
}
