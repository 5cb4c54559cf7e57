//! Mail as the services send it: galley-mail's templates and mailer, fed from the settings
//! (`meta` for the sender and the application's name and URL, `smtp` for delivery).

use crate::settings::Settings;
use galley_mail::{AppInfo, Mail, MailConfig, SmtpConfig};
use galley_types::collection::EmailTemplate;
use serde_json::Value;

pub use galley_mail::{Mailer, Vars};

fn text(settings: &Settings, p: &str) -> String {
    settings
        .0
        .pointer(p)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `t` filled in for `to`, with the application's name and URL from `meta`.
pub fn render(t: &EmailTemplate, settings: &Settings, to: &str, vars: &Vars<'_>) -> Mail {
    let (name, url) = (
        text(settings, "/meta/appName"),
        text(settings, "/meta/appURL"),
    );
    galley_mail::render(
        t,
        &AppInfo {
            name: &name,
            url: &url,
        },
        to,
        vars,
    )
}

/// The sender and the SMTP server (when `smtp.enabled`) of the settings.
pub fn config(settings: &Settings) -> MailConfig {
    let g = |p: &str| settings.0.pointer(p).cloned().unwrap_or(Value::Null);
    let smtp = (g("/smtp/enabled") == Value::Bool(true)).then(|| SmtpConfig {
        host: text(settings, "/smtp/host"),
        port: g("/smtp/port")
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(587),
        username: text(settings, "/smtp/username"),
        password: text(settings, "/smtp/password"),
        local_name: text(settings, "/smtp/localName"),
        tls: g("/smtp/tls") == Value::Bool(true),
        auth_method: text(settings, "/smtp/authMethod"),
    });
    MailConfig {
        sender_address: text(settings, "/meta/senderAddress"),
        sender_name: text(settings, "/meta/senderName"),
        smtp,
    }
}
