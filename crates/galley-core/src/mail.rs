//! Mail as the services send it: galley-mail's templates and mailer, fed from the settings
//! (`meta` for the sender and the application's name and URL, `smtp` for delivery).

use crate::settings::Settings;
use galley_mail::{AppInfo, Mail, MailConfig, SmtpConfig};
use galley_types::collection::EmailTemplate;

pub use galley_mail::{Mailer, Vars};

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
