//! The web UI in a real browser (headless Debian Chromium through chromedriver) against
//! a real `logbook serve` fed by the example agent and by OTLP: every page as a user
//! reaches it, by mouse and by keyboard, with axe-core's accessibility checks on each
//! and a screenshot of each under `target/ui-screenshots/`.

#![allow(clippy::unwrap_used)]

mod browser;
mod common;
#[path = "fixtures/wide_run.rs"]
mod wide_run;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use browser::Browser;
use common::{http_post, run_example, Collector};
use serde_json::{json, Value};

const AGENT: &str = env!("CARGO_BIN_EXE_logbook-e2e-example-agent");

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn shot(b: &Browser, name: &str) {
    b.screenshot(&screenshots().join(format!("{name}.png")));
}

/// axe-core's serious and critical violations on the page, if the test has axe-core
/// (`LOGBOOK_TEST_NODE_MODULES`, installed by scripts/test).
fn axe(b: &Browser, page: &str) {
    let Some(dir) = std::env::var_os("LOGBOOK_TEST_NODE_MODULES") else {
        eprintln!("LOGBOOK_TEST_NODE_MODULES unset: skipping axe-core on {page}");
        return;
    };
    let path = PathBuf::from(dir).join("node_modules/axe-core/axe.min.js");
    let source = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/test installs axe-core)", path.display()));
    if b.run("return typeof window.axe", json!([])) != json!("object") {
        b.run(&source, json!([]));
    }
    let result = b.run_async(
        "const done = arguments[arguments.length - 1];
         axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => ({id: v.id, help: v.help, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)})))).catch(e => done(String(e)));",
        json!([]),
    );
    assert_eq!(result, json!([]), "axe-core on {page}");
}

fn post_json(addr: SocketAddr, path: &str, body: &Value) {
    let r = http_post(
        addr,
        path,
        &[("Content-Type", "application/json")],
        &serde_json::to_vec(body).unwrap(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

fn now_ns() -> i64 {
    logbook_proto::Timestamp::now().as_nanos()
}

/// A run of the agent `big-prompter` whose LLM call carries a 100 KB prompt (and an
/// image as base64), over OTLP.
fn big_prompt_run(addr: SocketAddr) -> String {
    let start = now_ns() - 2_000_000_000;
    let trace = format!("{:032x}", 0xb16_u128 << 64 | start as u128);
    let attr = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
    let big = format!(
        "BEGIN {} END",
        "the quarterly numbers ".repeat(100_000 / 22)
    );
    let image = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg".repeat(40);
    let input = json!([
        {"role": "system", "parts": [{"type": "text", "content": format!("You are careful. {}", "Follow the rules. ".repeat(60))}]},
        {"role": "user", "parts": [{"type": "text", "content": big}, {"type": "text", "content": format!("data:image/png;base64,{image}")}]}
    ]);
    let output =
        json!([{"role": "assistant", "parts": [{"type": "text", "content": "Revenue grew 12%."}]}]);
    post_json(
        addr,
        "/v1/traces",
        &json!({"resourceSpans": [{"resource": {"attributes": [attr("service.name", "prompter")]},
        "scopeSpans": [{"scope": {"name": "t"}, "spans": [
            {"traceId": trace, "spanId": "00000000000000a1", "name": "invoke_agent big-prompter",
             "startTimeUnixNano": start.to_string(), "endTimeUnixNano": (start + 900_000_000).to_string(),
             "attributes": [attr("gen_ai.agent.name", "big-prompter"), attr("gen_ai.operation.name", "invoke_agent"), attr("tenant", "acme")],
             "status": {"code": 1}},
            {"traceId": trace, "spanId": "00000000000000b1", "parentSpanId": "00000000000000a1", "name": "chat gpt-4o",
             "startTimeUnixNano": (start + 100_000_000).to_string(), "endTimeUnixNano": (start + 800_000_000).to_string(),
             "attributes": [attr("gen_ai.operation.name", "chat"), attr("gen_ai.request.model", "gpt-4o"), attr("gen_ai.provider.name", "openai"),
                attr("gen_ai.input.messages", &input.to_string()), attr("gen_ai.output.messages", &output.to_string()), attr("tenant", "acme")],
             "status": {"code": 1}}
        ]}]}]}),
    );
    trace
}

/// Runs the example agent; the run ids it printed.
fn run_agent(c: &Collector) -> Vec<String> {
    run_example(AGENT, c)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|id| id.len() == 36)
        .map(str::to_owned)
        .collect()
}

/// Waits until the run page has drawn its waterfall.
fn wait_waterfall(b: &Browser) {
    b.wait_until(
        "the waterfall",
        "return document.getElementById('waterfall')?.dataset.drawn === 'true'",
        Duration::from_secs(10),
    );
}

/// Texts of the elements matching `css`.
fn texts(b: &Browser, css: &str) -> Vec<String> {
    b.run(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent.trim())",
        json!([css]),
    )
    .as_array()
    .unwrap()
    .iter()
    .map(|v| v.as_str().unwrap().to_owned())
    .collect()
}

#[test]
fn a_newcomer_finds_runs_waterfall_prompts_records_live_tail_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start_with(dir.path(), &["--http", "127.0.0.1:0"]);
    let addr = c.http_addr();
    let runs = run_agent(&c);
    assert_eq!(runs.len(), 4, "{runs:?}");
    let big_trace = big_prompt_run(addr);
    let base = format!("http://{addr}");
    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let b = Browser::start(&downloads, 1400, 900);

    // The runs page, newest first, then filtered by user through the form.
    b.go(&format!("{base}/"));
    assert!(b.url().ends_with("/runs"), "{}", b.url());
    let ids = texts(&b, "table.runs tbody td.id");
    assert_eq!(ids.len(), 5, "{ids:?}");
    for r in &runs {
        assert!(ids.contains(r), "{r} not in {ids:?}");
    }
    shot(&b, "runs");
    axe(&b, "runs");
    let user = b.find("input[name=user]");
    b.type_into(&user, "u-bob\u{E007}");
    b.wait_until(
        "the filtered runs",
        "return location.search.includes('user=u-bob')",
        Duration::from_secs(10),
    );
    let users: Vec<String> = texts(&b, "table.runs tbody tr td:nth-child(7)");
    assert_eq!(users, vec!["u-bob"], "{users:?}");
    shot(&b, "runs-filtered");

    // Open the run: the waterfall is drawn; a span's detail shows its prompt as chat.
    b.click(&b.find("table.runs tbody td.id a"));
    wait_waterfall(&b);
    let names = texts(&b, ".wf-row .wf-label");
    assert!(names.iter().any(|n| n == "chat"), "{names:?}");
    assert!(names.iter().any(|n| n == "execute_tool"), "{names:?}");
    assert!(
        !b.all(".wf-row.err").is_empty(),
        "the rate-limited call is an error"
    );
    assert!(!b.all(".wf-row.crit").is_empty(), "a critical path");
    shot(&b, "run");
    axe(&b, "run");
    b.click(&b.find(".wf-row.cat-llm_call"));
    b.find("#detail .chat .msg.role-user");
    let prompt = texts(&b, "#detail .chat .msg.role-user pre").join(" ");
    assert!(prompt.contains("revenue"), "{prompt}");
    assert!(
        prompt.contains("[REDACTED:email]"),
        "redacted as stored: {prompt}"
    );
    // The span's events: the failed call's error.
    b.wait_until(
        "the span's events",
        "return Array.from(document.querySelectorAll('#detail .span-events li')).some(li => li.textContent.includes('LLM call failed'))",
        Duration::from_secs(10),
    );
    shot(&b, "run-llm-call");
    axe(&b, "run with an LLM call open");

    // The tool call: arguments and result.
    b.click(&b.find(".wf-row.cat-tool_call"));
    b.wait_until(
        "the tool call's detail",
        "return document.querySelector('#detail .block h3')?.textContent.includes('Arguments') === true",
        Duration::from_secs(10),
    );
    let blocks = texts(&b, "#detail .block pre").join(" ");
    assert!(blocks.contains("quarterly revenue"), "{blocks}");

    // Keyboard only: Home, down to the first LLM call, Enter opens it.
    b.run(
        "document.getElementById('detail').innerHTML = ''",
        json!([]),
    );
    b.run("document.getElementById('waterfall').focus()", json!([]));
    let focus_style = b.run(
        "const s = getComputedStyle(document.activeElement, ':focus-visible'); return document.activeElement.id + ' ' + getComputedStyle(document.querySelector('.wf-row.active')).boxShadow",
        json!([]),
    );
    assert!(
        focus_style.as_str().unwrap().starts_with("waterfall "),
        "{focus_style}"
    );
    b.keys("\u{E011}"); // Home
    for _ in 0..20 {
        let active = b.run(
            "return document.querySelector('.wf-row.active')?.classList.contains('cat-llm_call')",
            json!([]),
        );
        if active == json!(true) {
            break;
        }
        b.keys("\u{E015}"); // ArrowDown
    }
    b.keys("\u{E007}"); // Enter
    b.find("#detail .chat");

    // The big prompt: cut, "show all" fetches all 100 KB; the image never shows.
    b.go(&format!("{base}/runs/{big_trace}"));
    wait_waterfall(&b);
    b.click(&b.find(".wf-row.cat-llm_call"));
    b.find("#detail .chat .msg.role-user");
    let system = b.find("#detail .msg.role-system details");
    assert_eq!(
        b.run(
            "return arguments[0].open",
            json!([{ "element-6066-11e4-a52e-4f735466cecf": browser_id(&system) }])
        ),
        json!(false),
        "a long system prompt starts collapsed"
    );
    let user_text = texts(&b, "#detail .msg.role-user .part pre");
    assert!(user_text[0].len() < 10_000, "cut: {}", user_text[0].len());
    assert!(!user_text[0].contains("END"));
    assert!(
        user_text[1].contains("[base64 payload,"),
        "{}",
        user_text[1]
    );
    assert!(!user_text[1].contains("iVBORw0KGgo"));
    shot(&b, "run-big-prompt");
    b.click(&b.find("#detail .msg.role-user .part a.show-all"));
    b.wait_until(
        "the whole prompt",
        "return Array.from(document.querySelectorAll('#detail .msg.role-user .part pre')).some(p => p.textContent.endsWith('END'))",
        Duration::from_secs(10),
    );
    let whole = texts(&b, "#detail .msg.role-user .part pre");
    assert!(whole
        .iter()
        .any(|t| t.len() > 99_000 && t.starts_with("BEGIN")));

    // Records: filter by level, live tail, export CSV with the filters.
    b.go(&format!("{base}/records?level=warn"));
    let levels = texts(&b, "table.records tbody td:nth-child(2)");
    assert!(!levels.is_empty());
    assert!(
        levels.iter().all(|l| l == "WARN" || l == "ERROR"),
        "{levels:?}"
    );
    shot(&b, "records");
    axe(&b, "records");
    // The top values of a field over the filtered records, each a link that filters.
    b.go(&format!(
        "{base}/records?category=llm_call&top=gen_ai.request.model"
    ));
    let top = texts(&b, "table.top tbody td:first-child");
    assert!(top.contains(&"gpt-4o-mini".to_owned()), "{top:?}");
    b.click(&b.find("table.top tbody td:first-child a"));
    assert!(
        b.url().contains("field=gen_ai.request.model"),
        "{}",
        b.url()
    );
    b.go(&format!("{base}/records?top=service"));
    let services = texts(&b, "table.top tbody td:first-child");
    assert!(
        services.contains(&"example-agent".to_owned()),
        "{services:?}"
    );
    shot(&b, "records-top");
    b.go(&format!("{base}/records?text=livetail"));
    b.click(&b.find("#live"));
    b.wait_until(
        "the live stream",
        "return document.getElementById('live-status').textContent.startsWith('live')",
        Duration::from_secs(10),
    );
    post_json(
        addr,
        "/v1/logs",
        &json!({"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "tail"}}]},
            "scopeLogs": [{"scope": {"name": "t"}, "logRecords": [
                {"timeUnixNano": now_ns().to_string(), "severityNumber": 13, "body": {"stringValue": "livetail <b>arrived</b>"}}]}]}]}),
    );
    b.wait_until(
        "the live record",
        "return document.querySelector('#record-rows tr td.message-cell')?.textContent === 'livetail <b>arrived</b>'",
        Duration::from_secs(15),
    );
    assert!(
        b.all("#record-rows b").is_empty(),
        "record text is never HTML"
    );
    shot(&b, "records-live");

    b.go(&format!("{base}/records?level=warn&category=log"));
    b.click(&b.find(".exports a[href*='format=csv']"));
    let csv = wait_file(&downloads, "csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines.len() >= 2, "{csv}");
    let header: Vec<&str> = lines[0].split(',').collect();
    let level = header.iter().position(|h| *h == "level").unwrap();
    for line in &lines[1..] {
        let l = line.split(',').nth(level).unwrap();
        assert!(l == "WARN" || l == "ERROR", "{line}");
    }

    // Sessions: a second run of the example agent makes each user's conversation two
    // turns long; filtered by a field of the root span; read as a transcript.
    let second = run_agent(&c);
    b.go(&format!("{base}/sessions"));
    let sessions = texts(&b, "table.sessions tbody td.id");
    assert!(sessions.contains(&"conv-alice".to_owned()), "{sessions:?}");
    shot(&b, "sessions");
    axe(&b, "sessions");
    b.go(&format!(
        "{base}/sessions?meta=run.name%3Drevenue+question&user=u-alice"
    ));
    assert_eq!(texts(&b, "table.sessions tbody td.id"), vec!["conv-alice"]);
    b.go(&format!("{base}/sessions?meta=run.name%3Dsomething+else"));
    assert!(texts(&b, "table.sessions tbody td.id").is_empty());
    b.go(&format!("{base}/sessions"));
    b.click(&b.find("table.sessions a[href='/sessions/conv-alice']"));
    let turns = b.all(".transcript .turn");
    assert_eq!(turns.len(), 2);
    let questions = texts(&b, ".transcript .msg.role-user pre");
    assert!(
        questions
            .iter()
            .all(|q| q.starts_with("How did revenue change")),
        "{questions:?}"
    );
    let answers = texts(&b, ".transcript .msg.role-assistant pre");
    assert_eq!(answers.len(), 2, "{answers:?}");
    shot(&b, "session");
    axe(&b, "session transcript");

    // Compare alice's run with bob's (one rate-limited call retried): one insertion.
    b.go(&format!("{base}/runs/{}", second[0]));
    let previous = b.find("#compare-previous");
    b.click(&previous);
    assert!(b.url().contains("/compare?"), "{}", b.url());
    b.go(&format!("{base}/compare?a={}&b={}", second[0], second[1]));
    let only_a = b.all("table.compare tr.cmp-only-a").len();
    let only_b = b.all("table.compare tr.cmp-only-b").len();
    assert_eq!((only_a, only_b), (0, 1), "one extra retry is one insertion");
    let diverges = texts(&b, "#diverges td:last-child");
    assert!(diverges[0].starts_with("They diverge here"), "{diverges:?}");
    shot(&b, "compare");
    axe(&b, "compare");

    // Feedback: the agent's own (the layer's genai::feedback), then a score on an LLM
    // call from its detail, found again by its score.
    b.go(&format!("{base}/runs/{}", runs[0]));
    let given = texts(&b, "#feedback table.feedback tbody td:nth-child(3)");
    assert_eq!(given, vec!["helpful"], "the layer's feedback");
    wait_waterfall(&b);
    b.click(&b.find(".wf-row.cat-llm_call"));
    let form = b.find("#detail form.feedback-form");
    let _ = form;
    b.type_into(
        &b.find("#detail form.feedback-form input[name=label]"),
        "wrong figure",
    );
    b.type_into(&b.find("#detail form.feedback-form input[name=score]"), "0");
    b.click(&b.find("#detail form.feedback-form button"));
    b.wait_until(
        "the feedback",
        "return Array.from(document.querySelectorAll('#feedback td')).some(td => td.textContent === 'wrong figure')",
        Duration::from_secs(10),
    );
    shot(&b, "run-feedback");
    b.go(&format!(
        "{base}/records?category=feedback&field=feedback.score%3D0"
    ));
    let found = texts(&b, "table.records tbody td.message-cell");
    assert_eq!(found, vec!["feedback: wrong figure, score 0"], "{found:?}");

    // LLM calls and cost: the calls, the cost by model, and charts that follow the
    // filters (a model no call used leaves them empty).
    b.go(&format!("{base}/calls"));
    let models = texts(&b, "table.calls tbody td:nth-child(2)");
    assert!(
        models.iter().any(|m| m.starts_with("gpt-4o-mini")),
        "{models:?}"
    );
    b.wait_until(
        "the cost tables",
        "return document.querySelectorAll('table.cost tbody td').length > 0",
        Duration::from_secs(10),
    );
    b.wait_until(
        "the charts",
        "return document.querySelectorAll('figure.chart canvas').length === 3",
        Duration::from_secs(10),
    );
    shot(&b, "calls");
    axe(&b, "calls");
    b.go(&format!("{base}/calls?model=no-such-model"));
    assert!(texts(&b, "table.calls tbody td").is_empty());
    assert_eq!(
        b.all("figure.chart figcaption .muted").len(),
        3,
        "every chart follows the filter"
    );
    b.go(&format!("{base}/records?level=warn"));
    b.wait_until(
        "the records chart",
        "return document.querySelectorAll('#records-chart canvas').length === 1",
        Duration::from_secs(10),
    );

    // Maintenance: purge records older than 2 days, counted first, then confirmed.
    post_json(
        addr,
        "/v1/traces",
        &serde_json::from_slice::<Value>(&common::agent_runs(
            "oldco",
            5,
            Duration::from_secs(3 * 86_400),
            7,
        ))
        .unwrap(),
    );
    b.go(&format!("{base}/maintenance"));
    shot(&b, "maintenance");
    axe(&b, "maintenance");
    let days = b.find("#purge-days");
    b.clear(&days);
    b.type_into(&days, "2");
    b.click(&b.find("#purge-count-button"));
    let counted = b.text(&b.find("#purge-count"));
    assert!(
        counted.starts_with("10 records older than 2 days would be deleted"),
        "{counted}"
    );
    shot(&b, "maintenance-confirm");
    b.click(&b.find("#purge-confirm"));
    let done = b.text(&b.find("#purge-done"));
    assert!(
        done.starts_with("Deleted 10 records older than 2 days"),
        "{done}"
    );
    b.go(&format!("{base}/runs?tenant=oldco"));
    assert!(texts(&b, "table.runs tbody td.id").is_empty());

    // A DSAR export of one user, from the same page (a POST with the page's token).
    b.go(&format!("{base}/maintenance"));
    b.type_into(
        &b.find("form[action='/maintenance/dsar'] input[name=user]"),
        "u-alice",
    );
    b.click(&b.find("form[action='/maintenance/dsar'] button"));
    let dsar = wait_file(&downloads, "jsonl");
    let users: std::collections::BTreeSet<String> = dsar
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["user_id"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(
        users.into_iter().collect::<Vec<_>>(),
        vec!["u-alice"],
        "{dsar:.300}"
    );

    // The audit trail: the purge is in it, the chain intact.
    b.go(&format!("{base}/audit?action=purge"));
    let status = b.text(&b.find("#chain-status"));
    assert!(status.starts_with("intact"), "{status}");
    let actions = texts(&b, "table.audit tbody td:nth-child(2)");
    assert!(
        !actions.is_empty() && actions.iter().all(|a| a == "purge"),
        "{actions:?}"
    );
    let what = texts(&b, "table.audit tbody td:nth-child(5)").join(" ");
    assert!(what.contains("10"), "{what}");
    shot(&b, "audit");
    axe(&b, "audit");

    // Keyboard: Tab walks the runs page's controls, each with a visible focus ring.
    b.go(&format!("{base}/runs"));
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        b.keys("\u{E004}");
        let focus = b.run(
            "const e = document.activeElement; const s = getComputedStyle(e);
             return [e.tagName + (e.name ? ':' + e.name : '') + (e.getAttribute('href') ? ':' + e.getAttribute('href') : ''), s.outlineStyle, s.outlineWidth];",
            json!([]),
        );
        assert_ne!(focus[1], json!("none"), "no visible focus on {focus}");
        seen.insert(focus[0].as_str().unwrap().to_owned());
    }
    for wanted in ["A:/records", "SELECT:since", "INPUT:user", "BUTTON"] {
        assert!(
            seen.iter().any(|s| s.starts_with(wanted)),
            "{wanted} not reached by Tab: {seen:?}"
        );
    }

    // A viewer of tenant acme signs in and sees acme's runs only.
    let out = c.cli(&[
        "token",
        "create",
        "--role",
        "viewer",
        "--tenant",
        "acme",
        "--name",
        "acme viewer",
    ]);
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    drop(b);
    let b = Browser::start(&downloads, 1000, 800);
    b.go(&format!("{base}/runs"));
    b.find("form[action='/sign-in']");
    assert!(b.url().contains("/sign-in?next="), "{}", b.url());
    shot(&b, "sign-in");
    axe(&b, "sign-in");
    b.type_into(&b.find("#token"), "lbk_wrong_token\u{E007}");
    b.find("p.error");
    b.type_into(&b.find("#token"), &format!("{token}\u{E007}"));
    b.wait_until(
        "the runs page",
        "return location.pathname === '/runs'",
        Duration::from_secs(10),
    );
    let tenants = texts(&b, ".who .scope");
    assert_eq!(tenants, vec!["tenant=acme"]);
    let shown = texts(&b, "table.runs tbody td.id");
    assert!(!shown.is_empty());
    for id in &shown {
        let r = b.run_async(
            "const done = arguments[1]; fetch('/api/v1/runs/' + arguments[0]).then(r => r.json()).then(j => done(j.run.tenant))",
            json!([id]),
        );
        assert_eq!(r, json!("acme"), "{id}");
    }
    shot(&b, "runs-viewer");
}

fn browser_id(e: &browser::Element) -> String {
    format!("{e:?}")
        .trim_start_matches("Element(\"")
        .trim_end_matches("\")")
        .to_owned()
}

/// The text of the first file ending in `.ext` to finish downloading into `dir`:
/// once no download is in progress there and its size holds still.
fn wait_file(dir: &std::path::Path, ext: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut last: Option<(PathBuf, u64)> = None;
    loop {
        let entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let busy = entries
            .iter()
            .any(|p| p.extension().is_some_and(|x| x == "crdownload"));
        let found = entries
            .into_iter()
            .find(|p| p.extension().is_some_and(|x| x == ext));
        if let (Some(p), false) = (found, busy) {
            let len = std::fs::metadata(&p).map_or(0, |m| m.len());
            if len > 0 && last.as_ref() == Some(&(p.clone(), len)) {
                return std::fs::read_to_string(p).unwrap();
            }
            last = Some((p, len));
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no .{ext} download in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A run of 10,000 spans (99 steps of 100 LLM calls, each with a 2 KB prompt, call
/// 750 failing) over OTLP.
fn big_run(addr: SocketAddr) -> String {
    let (trace, spans) = wide_run::spans(now_ns() - 60_000_000_000, 2000, Some((7, 50)));
    for chunk in spans.chunks(1000) {
        post_json(addr, "/v1/traces", &wide_run::request(chunk));
    }
    trace
}

#[test]
fn a_run_of_ten_thousand_spans_opens_light_and_scrolls() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start_with(dir.path(), &["--http", "127.0.0.1:0"]);
    let addr = c.http_addr();
    let trace = big_run(addr);
    let b = Browser::start(dir.path(), 1400, 900);
    b.go(&format!("http://{addr}/runs/{trace}"));
    b.wait_until(
        "the waterfall",
        "return performance.getEntriesByName('waterfall-drawn').length === 1",
        Duration::from_secs(30),
    );
    // The first load: the page (its outline included) and everything it loads.
    let sizes = b.run(
        "const n = performance.getEntriesByType('navigation')[0];
         const r = performance.getEntriesByType('resource');
         return {transferred: n.transferSize + r.reduce((s, e) => s + e.transferSize, 0),
                 decoded: n.decodedBodySize + r.reduce((s, e) => s + e.decodedBodySize, 0),
                 html: n.decodedBodySize,
                 drawn_ms: performance.getEntriesByName('waterfall-drawn')[0].startTime}",
        json!([]),
    );
    eprintln!("10,000 spans: {sizes}");
    assert!(sizes["decoded"].as_f64().unwrap() < 2e6, "{sizes}");
    assert!(sizes["transferred"].as_f64().unwrap() < 2e6, "{sizes}");
    assert_eq!(texts(&b, "h2#wf-title .muted"), vec!["(10000)"]);
    let drawn = b.all(".wf-row").len();
    assert!(
        (20..200).contains(&drawn),
        "only the rows in view are drawn: {drawn}"
    );
    shot(&b, "run-10k");
    axe(&b, "a run of 10,000 spans");

    // Collapsed: the page says how many spans are hidden.
    b.click(&b.find("#wf-collapse"));
    assert_eq!(
        texts(&b, "#wf-hidden"),
        vec!["9900 hidden under collapsed spans"]
    );
    b.click(&b.find("#wf-expand"));
    // Scrolled to the end: the last span is drawn, and still only a screenful.
    b.run(
        "const w = document.getElementById('waterfall'); w.scrollTop = w.scrollHeight;",
        json!([]),
    );
    b.wait_until(
        "the last span",
        "return Array.from(document.querySelectorAll('.wf-label')).some(l => l.textContent === 'chat 9899')",
        Duration::from_secs(10),
    );
    assert!(b.all(".wf-row").len() < 200);
    // The error deep inside is one click away with "errors only".
    b.click(&b.find("#wf-errors"));
    let shown = texts(&b, ".wf-row .wf-label");
    assert_eq!(
        shown,
        vec!["invoke_agent wide", "step 7", "chat 750"],
        "{shown:?}"
    );
    b.click(&b.find(".wf-row.err"));
    b.find("#detail .chat .msg.role-user");
    shot(&b, "run-10k-error");
}

/// The session cookie as a client without a browser sees it: signed in with the shared
/// token, it opens the pages and the API, survives a restart, and ends when the token
/// changes; a forged or altered cookie opens nothing; state-changing API requests with
/// it need the CSRF token.
#[test]
fn sessions_follow_their_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("logbook.toml");
    std::fs::write(&config, "token = \"first-shared-token-0123456789\"\n").unwrap();
    let mut c = Collector::start_with(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
        ],
    );
    let addr = c.http_addr();
    let sign_in = |addr: SocketAddr, token: &str| {
        let body = format!("token={token}&next=%2Fruns");
        common::http_request(
            addr,
            "POST",
            "/sign-in",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Origin", &format!("http://{addr}")),
            ],
            body.as_bytes(),
        )
    };
    let wrong = sign_in(addr, "not-the-token");
    assert_eq!(wrong.status, 401);
    let out = c.cli(&["token", "create", "--role", "ingest", "--name", "sender"]);
    assert!(out.status.success());
    let ingest = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    std::thread::sleep(Duration::from_millis(1200));
    let sender = sign_in(addr, &ingest);
    assert_eq!(sender.status, 403, "an ingest token opens no page");
    assert!(sender.header("set-cookie").is_none());
    let r = sign_in(addr, "first-shared-token-0123456789");
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/runs"));
    let set = r.header("set-cookie").unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let get = |addr: SocketAddr, path: &str, cookie: &str| {
        common::http_request(addr, "GET", path, &[("Cookie", cookie)], b"")
    };
    assert_eq!(get(addr, "/runs", &cookie).status, 200);
    assert_eq!(get(addr, "/api/v1/runs", &cookie).status, 200);
    assert_eq!(
        get(addr, "/runs", "").status,
        303,
        "no cookie: to the sign-in page"
    );
    // The signature's last digit changed.
    let flip = if cookie.ends_with('0') { '1' } else { '0' };
    let altered = format!("{}{flip}", &cookie[..cookie.len() - 1]);
    assert_eq!(get(addr, "/api/v1/runs", &altered).status, 401);
    // A POST with the cookie and no CSRF token is refused; with it, it goes through.
    let page = get(addr, "/runs", &cookie).text();
    let csrf = page
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let body = br#"{"run": "nope", "score": 1}"#;
    let post = |csrf: Option<&str>| {
        let mut headers = vec![
            ("Cookie", cookie.as_str()),
            ("Content-Type", "application/json"),
        ];
        if let Some(c) = csrf {
            headers.push(("X-CSRF-Token", c));
        }
        common::http_request(addr, "POST", "/api/v1/feedback", &headers, body)
    };
    assert_eq!(post(None).status, 403);
    assert_eq!(
        post(Some(&csrf)).status,
        404,
        "past the CSRF check: no such run"
    );
    // A restart keeps the session; another shared token ends it.
    c.stop();
    c.restart();
    let addr = c.http_addr();
    assert_eq!(get(addr, "/runs", &cookie).status, 200);
    c.stop();
    std::fs::write(&config, "token = \"second-shared-token-0123456789\"\n").unwrap();
    c.restart();
    let addr = c.http_addr();
    assert_eq!(get(addr, "/runs", &cookie).status, 303);
}
