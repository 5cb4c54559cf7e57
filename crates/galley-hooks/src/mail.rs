//! `$app.newMailClient().send(new MailerMessage({...}))`: through the durable mail queue,
//! like the mails Galley sends itself (SMTP from the settings, or the dev outbox); inside a
//! hook's transaction the mail is queued only if the transaction commits.

use galley_core::CoreError;
use serde_json::Value;

/// `to` may be PocketBase's `[{address, name}]` or plain strings.
fn addresses(v: &Value) -> Vec<String> {
    let one = |a: &Value| match a {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("address").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    match v {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        other => one(other).into_iter().collect(),
    }
}

/// The mails of a `MailerMessage`, one per recipient.
pub(crate) fn mails(m: &Value) -> Result<Vec<galley_core::mail::Mail>, CoreError> {
    let to = addresses(&m["to"]);
    if to.is_empty() {
        return Err(CoreError::bad_request("The mail has no recipient."));
    }
    let subject = m["subject"].as_str().unwrap_or_default().to_owned();
    let html = match m["html"].as_str() {
        Some(h) if !h.is_empty() => h.to_owned(),
        _ => m["text"].as_str().unwrap_or_default().to_owned(),
    };
    Ok(to
        .into_iter()
        .map(|addr| galley_core::mail::Mail {
            to: addr,
            subject: subject.clone(),
            html: html.clone(),
        })
        .collect())
}
