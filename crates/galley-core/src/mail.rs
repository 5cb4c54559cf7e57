//! Mail as the services send it: galley-mail's templates and mailer, fed from the settings
//! (`meta` for the sender and the application's name and URL, `smtp` for delivery).

use crate::settings::Settings;
use galley_mail::{AppInfo, MailConfig, SmtpConfig};
use galley_types::collection::EmailTemplate;

pub use galley_mail::{Mail, Vars};

/// `t` filled in for `to`, with the application's name and URL from `meta`.
pub fn render(t: &EmailTemplate, settings: &Settings, to: &str, vars: &Vars<'_>) -> Mail {
    let app = AppInfo {
        name: &settings.meta.app_name,
        url: &settings.meta.app_url,
    };
    galley_mail::render(t, &app, to, vars)
}

/// The sender and the SMTP server (when `smtp.enabled`) of the settings.
pub fn config(settings: &Settings) -> MailConfig {
    let s = &settings.smtp;
    let smtp = s.enabled.then(|| SmtpConfig {
        host: s.host.clone(),
        // PocketBase stores any int; anything that is not a port falls back to 587.
        port: u16::try_from(s.port).unwrap_or(587),
        username: s.username.clone(),
        password: s.password.expose().to_owned(),
        local_name: s.local_name.clone(),
        tls: s.tls,
        auth_method: s.auth_method.clone(),
    });
    MailConfig {
        sender_address: settings.meta.sender_address.clone(),
        sender_name: settings.meta.sender_name.clone(),
        smtp,
    }
}

/// The job kind of outgoing mail: every mail goes through the durable queue, so a mail
/// requested just before a crash is sent after the restart and SMTP failures are retried.
pub const JOB_KIND: &str = "mail";

/// How many mails the dev outbox keeps (oldest dropped first).
pub const OUTBOX_CAP: i64 = 200;

/// `mail` as a queued job (its payload is the rendered mail; the sender and the SMTP server
/// are read from the settings when it runs, so a fixed SMTP setting applies to retries).
pub fn job(mail: &Mail) -> galley_jobs::NewJob {
    galley_jobs::NewJob::new(
        JOB_KIND,
        serde_json::json!({"to": mail.to, "subject": mail.subject, "html": mail.html}),
    )
    .max_attempts(8)
}

/// The mail of a queued job; `None` for a payload that is not one.
pub fn from_payload(p: &serde_json::Value) -> Option<Mail> {
    Some(Mail {
        to: p.get("to")?.as_str()?.to_owned(),
        subject: p.get("subject")?.as_str()?.to_owned(),
        html: p.get("html")?.as_str()?.to_owned(),
    })
}

/// Keeps `mail` in the dev outbox (SMTP off), in the caller's write job, and drops the
/// oldest beyond [`OUTBOX_CAP`]. `id` is the job's, so a re-run after a crash replaces
/// rather than duplicates.
pub fn outbox_push(
    c: &mut dyn galley_store::Conn,
    id: &str,
    config: &MailConfig,
    mail: &Mail,
) -> Result<(), galley_store::StoreError> {
    use galley_sql::{Sql, SqlValue};
    use galley_store::ConnExt;
    let now = chrono::Utc::now();
    let doc = serde_json::json!({
        "id": id,
        "from": {"address": config.sender_address, "name": config.sender_name},
        "to": mail.to,
        "subject": mail.subject,
        "html": mail.html,
        "created": galley_types::datetime::format(&now),
    });
    let mut ins = Sql::new(c.dialect());
    ins.push("INSERT INTO \"_devOutbox\" (\"id\", \"mail\", \"created\") VALUES (")
        .push_param(id)
        .push(", ")
        .push_param(doc.to_string())
        .push(", ")
        .push_param(SqlValue::Int(now.timestamp_micros()))
        .push(") ON CONFLICT DO NOTHING");
    c.execute_sql(&ins)?;
    let n = c.count("SELECT COUNT(*) AS n FROM \"_devOutbox\"", &[])?;
    if n > OUTBOX_CAP {
        let mut prune = Sql::new(c.dialect());
        prune
            .push("DELETE FROM \"_devOutbox\" WHERE \"id\" IN (SELECT \"id\" FROM \"_devOutbox\" ORDER BY \"created\", \"id\" LIMIT ")
            .push_param(n - OUTBOX_CAP)
            .push(")");
        c.execute_sql(&prune)?;
    }
    Ok(())
}

/// The dev outbox, oldest first.
pub fn outbox_list(
    c: &mut dyn galley_store::Conn,
) -> Result<Vec<serde_json::Value>, galley_store::StoreError> {
    Ok(c.query(
        "SELECT \"mail\" FROM \"_devOutbox\" ORDER BY \"created\", \"id\"",
        &[],
    )?
    .iter()
    .filter_map(|r| serde_json::from_str(&r.text("mail")).ok())
    .collect())
}
