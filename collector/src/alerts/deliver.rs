//! Evaluating the rules (blocking: store reads) and sending what fires to the rules'
//! webhooks (async), three attempts with backoff.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use logbook_proto::Timestamp;

use super::{observe, payload, signature, step, AlertRule};
use crate::forward::client::{Client, PostError};
use crate::store::alerts::{AlertEvent, AlertState};
use crate::store::{StoreError, StoreReader, StoreWriter};

/// Attempts per delivery.
const ATTEMPTS: u32 = 3;

/// The states to keep and the events to send.
pub type Evaluation = (Vec<AlertState>, Vec<AlertEvent>);

/// The states to keep and the events to send now, or `None` when another collector
/// holds the evaluator's lease. Blocking.
pub fn evaluate(
    reader: &dyn StoreReader,
    writer: &Mutex<Box<dyn StoreWriter>>,
    rules: &[AlertRule],
    now: Timestamp,
) -> Result<Option<Evaluation>, StoreError> {
    let leased = writer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .alert_lease()?;
    if !leased {
        return Ok(None);
    }
    let previous = reader.alert_states()?;
    let mut seen = HashMap::new();
    for rule in rules {
        seen.insert(rule.name.clone(), observe(reader, rule, now)?);
    }
    Ok(Some(step(rules, &seen, &previous, now)))
}

/// Sends `e` to its rule's webhook: up to three attempts, 1 s then 2 s apart; the
/// outcome is written into `e`.
pub async fn deliver(rule: &AlertRule, e: &mut AlertEvent) {
    let Some(url) = &rule.webhook else {
        e.delivery = "no channel".into();
        return;
    };
    let endpoint: crate::forward::Endpoint = match url.parse() {
        Ok(endpoint) => endpoint,
        Err(err) => {
            e.delivery = format!("failed: {err}");
            return;
        }
    };
    let mut client = match Client::new(endpoint, Vec::new(), None) {
        Ok(c) => c,
        Err(err) => {
            e.delivery = format!("failed: {err}");
            return;
        }
    };
    let body = serde_json::to_vec(&payload(e)).unwrap_or_default();
    let mut headers = Vec::new();
    if let Some(secret) = &rule.secret {
        headers.push((
            "X-Logbook-Signature".to_owned(),
            signature(secret.expose(), &body),
        ));
    }
    let mut wait = Duration::from_secs(1);
    for attempt in 1..=ATTEMPTS {
        e.attempts = attempt;
        match client
            .post_as("", "application/json", &headers, body.clone())
            .await
        {
            Ok(()) => {
                e.delivery = "sent".into();
                return;
            }
            Err(PostError::Refused(m) | PostError::Failed(m)) => {
                e.delivery = format!("failed: {m}");
                tracing::warn!(alert = %rule.name, attempt, error = %m, "Could not deliver an alert.");
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
}
