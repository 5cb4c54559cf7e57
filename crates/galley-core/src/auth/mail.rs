//! Outgoing mail. With `settings.smtp.enabled` mail goes out over SMTP (lettre + rustls:
//! implicit TLS with `smtp.tls`, else STARTTLS whenever the server offers it, as PocketBase's
//! mailer); otherwise it lands in the dev outbox, an in-memory ring that
//! superusers read at `GET /api/galley/outbox`, and in the log. Sending always happens on a
//! spawned task, off the request path, so a request's timing never depends on it.

use crate::settings::Settings;
use galley_types::collection::EmailTemplate;
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// How many mails the dev outbox keeps (oldest dropped first).
const OUTBOX_CAP: usize = 200;

#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub html: String,
}

/// Placeholder values of a template.
#[derive(Debug, Default)]
pub struct Vars<'a> {
    pub token: &'a str,
    pub otp: &'a str,
    pub alert_info: &'a str,
}

/// `{APP_NAME}`, `{APP_URL}`, `{TOKEN}`, `{OTP}`, `{ALERT_INFO}` replaced.
pub fn render(t: &EmailTemplate, settings: &Settings, to: &str, vars: &Vars<'_>) -> Mail {
    let name = &settings.meta.app_name;
    let url = settings.meta.app_url.trim_end_matches('/');
    let fill = |text: &str| {
        text.replace("{APP_NAME}", name)
            .replace("{APP_URL}", url)
            .replace("{TOKEN}", vars.token)
            .replace("{OTP}", vars.otp)
            .replace("{ALERT_INFO}", vars.alert_info)
    };
    Mail {
        to: to.to_owned(),
        subject: fill(&t.subject),
        html: fill(&t.body),
    }
}

#[derive(Default)]
pub struct Mailer {
    outbox: Arc<Mutex<VecDeque<Value>>>,
}

struct Smtp {
    host: String,
    port: u16,
    username: String,
    password: String,
    local_name: String,
    /// Implicit TLS from the first byte (SMTPS, usually port 465).
    tls: bool,
    /// `PLAIN` or `LOGIN`; empty lets lettre choose.
    auth_method: String,
}

impl Mailer {
    /// Queues `mail` for delivery on a background task.
    pub fn send(&self, settings: &Settings, mail: Mail) {
        let from_addr = settings.meta.sender_address.clone();
        let from_name = settings.meta.sender_name.clone();
        let s = &settings.smtp;
        let smtp = s.enabled.then(|| Smtp {
            host: s.host.clone(),
            port: u16::try_from(s.port).unwrap_or(587),
            username: s.username.clone(),
            password: s.password.expose().to_owned(),
            local_name: s.local_name.clone(),
            tls: s.tls,
            auth_method: s.auth_method.clone(),
        });
        let outbox = self.outbox.clone();
        tokio::spawn(async move {
            let Some(smtp) = smtp else {
                tracing::info!(to = %mail.to, subject = %mail.subject, "mail to the dev outbox (SMTP is not enabled)");
                if let Ok(mut o) = outbox.lock() {
                    if o.len() >= OUTBOX_CAP {
                        o.pop_front();
                    }
                    o.push_back(json!({
                        "id": galley_types::ids::secret(15).to_lowercase(),
                        "from": {"address": from_addr, "name": from_name},
                        "to": mail.to,
                        "subject": mail.subject,
                        "html": mail.html,
                        "created": galley_types::datetime::now_string(),
                    }));
                }
                return;
            };
            if let Err(e) = deliver(&smtp, &from_addr, &from_name, &mail).await {
                tracing::warn!(to = %mail.to, subject = %mail.subject, error = %e, "mail delivery failed");
            }
        });
    }

    /// The dev outbox, oldest first.
    pub fn outbox(&self) -> Vec<Value> {
        self.outbox
            .lock()
            .map(|o| o.iter().cloned().collect())
            .unwrap_or_default()
    }
}

async fn deliver(smtp: &Smtp, from_addr: &str, from_name: &str, mail: &Mail) -> Result<(), String> {
    let from = Mailbox::new(
        (!from_name.is_empty()).then(|| from_name.to_owned()),
        from_addr.parse().map_err(|e| format!("sender: {e}"))?,
    );
    let to: Mailbox = mail.to.parse().map_err(|e| format!("recipient: {e}"))?;
    let msg = lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject.clone())
        .header(ContentType::TEXT_HTML)
        .body(mail.html.clone())
        .map_err(|e| e.to_string())?;
    let params = TlsParameters::new(smtp.host.clone()).map_err(|e| format!("tls: {e}"))?;
    let tls = if smtp.tls {
        Tls::Wrapper(params)
    } else {
        Tls::Opportunistic(params)
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.as_str())
        .port(smtp.port)
        .tls(tls);
    if !smtp.username.is_empty() {
        b = b.credentials(Credentials::new(
            smtp.username.clone(),
            smtp.password.clone(),
        ));
        match smtp.auth_method.to_ascii_uppercase().as_str() {
            "PLAIN" => b = b.authentication(vec![Mechanism::Plain]),
            "LOGIN" => b = b.authentication(vec![Mechanism::Login]),
            _ => {}
        }
    }
    if !smtp.local_name.is_empty() {
        b = b.hello_name(ClientId::Domain(smtp.local_name.clone()));
    }
    let transport = b.timeout(Some(std::time::Duration::from_secs(30))).build();
    transport
        .send(msg)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
