//! Outgoing mail: templates, and [`send`] over SMTP (lettre + rustls: implicit TLS with
//! `tls`, else STARTTLS whenever the server offers it, as PocketBase's mailer). Queueing,
//! retries and the dev outbox (mail kept while SMTP is off) belong to the caller
//! (galley-core sends mail through its job queue).
//!
//! Architecture invariant: knows nothing of settings, records or HTTP; the caller passes a
//! [`MailConfig`] built from its settings.

use galley_types::collection::EmailTemplate;
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

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
pub fn render(t: &EmailTemplate, app: &AppInfo<'_>, to: &str, vars: &Vars<'_>) -> Mail {
    let url = app.url.trim_end_matches('/');
    let fill = |text: &str| {
        text.replace("{APP_NAME}", app.name)
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

/// The application's name and URL, as templates show them.
#[derive(Debug, Clone, Copy)]
pub struct AppInfo<'a> {
    pub name: &'a str,
    pub url: &'a str,
}

/// Where mail comes from and how it leaves.
#[derive(Debug, Clone, Default)]
pub struct MailConfig {
    pub sender_address: String,
    pub sender_name: String,
    /// `None`: the dev outbox.
    pub smtp: Option<SmtpConfig>,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub local_name: String,
    /// Implicit TLS from the first byte (SMTPS, usually port 465).
    pub tls: bool,
    /// `PLAIN` or `LOGIN`; empty lets lettre choose.
    pub auth_method: String,
}

/// Why a delivery failed (the queue retries it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// A sender or recipient address that no retry can fix.
    #[error("{0}")]
    Address(String),
    /// The SMTP exchange failed (connection, TLS, authentication, refusal).
    #[error("{0}")]
    Smtp(String),
}

impl SendError {
    /// Whether another attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Smtp(_))
    }
}

/// Sends `mail` over `smtp` now, from the configured sender.
pub async fn send(config: &MailConfig, smtp: &SmtpConfig, mail: &Mail) -> Result<(), SendError> {
    use tracing::Instrument;
    // Exported with `--otlp-endpoint` (galley_ops::traces); the server, never the addresses.
    let span = tracing::info_span!(target: "galley_trace", "smtp.send", otel.kind = "client", server.address = %smtp.host);
    deliver(smtp, &config.sender_address, &config.sender_name, mail)
        .instrument(span)
        .await
}

async fn deliver(
    smtp: &SmtpConfig,
    from_addr: &str,
    from_name: &str,
    mail: &Mail,
) -> Result<(), SendError> {
    let from = Mailbox::new(
        (!from_name.is_empty()).then(|| from_name.to_owned()),
        from_addr
            .parse()
            .map_err(|e| SendError::Address(format!("sender: {e}")))?,
    );
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|e| SendError::Address(format!("recipient: {e}")))?;
    let msg = lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject.clone())
        .header(ContentType::TEXT_HTML)
        .body(mail.html.clone())
        .map_err(|e| SendError::Address(e.to_string()))?;
    let params =
        TlsParameters::new(smtp.host.clone()).map_err(|e| SendError::Smtp(format!("tls: {e}")))?;
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
        .map_err(|e| SendError::Smtp(e.to_string()))
}
