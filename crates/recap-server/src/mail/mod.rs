//! Outgoing mail: a small [`Mailer`] over an async SMTP transport (lettre, rustls with ring).
//!
//! Without `SMTP_HOST` nothing is sent: in development and test the magic link is written to the
//! log instead, so a local instance is usable without a mail server; in production the mail is
//! refused with an error in the log (the caller's answer does not change, so nothing about the
//! account leaks to the client).

use std::{fmt, str::FromStr, time::Duration};

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentTransferEncoding, header::ContentType},
    transport::smtp::{
        authentication::Credentials,
        client::{Tls, TlsParameters},
    },
};

use crate::config::{ConfigError, Environment};

/// How the SMTP connection is secured (`SMTP_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plaintext (a trusted local relay, or tests).
    None,
    /// Plaintext, then STARTTLS; refuses to continue if the upgrade fails.
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// Mail settings (`SMTP_*`, `MAGIC_LINK_URL`).
#[derive(Clone)]
pub struct MailSettings {
    /// No host: nothing is sent (see the module docs).
    pub host: Option<String>,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
    pub tls: SmtpTls,
    /// The page of the frontend that takes `?token=` and calls `GET /api/v1/auth/verify`.
    pub magic_link_url: String,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            host: None,
            port: 587,
            username: None,
            password: None,
            from: "Recap <no-reply@localhost>".into(),
            tls: SmtpTls::StartTls,
            magic_link_url: "http://localhost:3000/auth/verify".into(),
        }
    }
}

impl fmt::Debug for MailSettings {
    // Hand-written so the SMTP password never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("tls", &self.tls)
            .field("magic_link_url", &self.magic_link_url)
            .finish()
    }
}

fn invalid(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { var, message: message.into() }
}

impl MailSettings {
    /// Reads the mail variables through `get` (which answers trimmed, non-empty values).
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<MailSettings, ConfigError> {
        let mut m = MailSettings::default();
        if let Some(v) = get("SMTP_HOST") {
            if v.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
                return Err(invalid("SMTP_HOST", format!("{v:?} is not a host name or IP address")));
            }
            m.host = Some(v);
        }
        if let Some(v) = get("SMTP_PORT") {
            m.port = match v.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(invalid("SMTP_PORT", format!("{v:?} is not a port number"))),
            };
        }
        m.username = get("SMTP_USERNAME");
        m.password = get("SMTP_PASSWORD");
        if m.username.is_some() != m.password.is_some() {
            let missing = if m.username.is_none() { "SMTP_USERNAME" } else { "SMTP_PASSWORD" };
            return Err(invalid(missing, "SMTP_USERNAME and SMTP_PASSWORD must be set together"));
        }
        if let Some(v) = get("SMTP_FROM") {
            if Mailbox::from_str(&v).is_err() {
                return Err(invalid(
                    "SMTP_FROM",
                    format!("{v:?} is not a mailbox (e.g. \"Recap <no-reply@example.org>\")"),
                ));
            }
            m.from = v;
        }
        if let Some(v) = get("SMTP_TLS") {
            m.tls = match v.to_ascii_lowercase().as_str() {
                "none" | "off" | "plain" => SmtpTls::None,
                "starttls" => SmtpTls::StartTls,
                "tls" | "smtps" | "wrapper" => SmtpTls::Tls,
                _ => return Err(invalid("SMTP_TLS", format!("expected none, starttls or tls, got {v:?}"))),
            };
        }
        if let Some(v) = get("MAGIC_LINK_URL") {
            let ok = (v.starts_with("http://") || v.starts_with("https://"))
                && v.is_ascii()
                && !v.contains(|c: char| c.is_whitespace() || c.is_control() || c == '#');
            if !ok {
                return Err(invalid("MAGIC_LINK_URL", format!("{v:?} is not an http(s) URL without a fragment")));
            }
            m.magic_link_url = v;
        }
        Ok(m)
    }
}

/// Sends the few mails the server writes. Cheap to share (`Arc` in the app state).
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    environment: Environment,
    magic_link_url: String,
}

/// An SMTP conversation longer than this fails (and is logged) instead of holding the request.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

impl Mailer {
    pub fn new(settings: &MailSettings, environment: Environment) -> anyhow::Result<Mailer> {
        let from = Mailbox::from_str(&settings.from)
            .map_err(|e| anyhow::anyhow!("SMTP_FROM {:?} is not a mailbox: {e}", settings.from))?;
        let transport = match &settings.host {
            None => {
                if environment == Environment::Production {
                    tracing::warn!("SMTP_HOST is not set: magic-link e-mails cannot be sent");
                }
                None
            }
            Some(host) => {
                let tls = match settings.tls {
                    SmtpTls::None => {
                        if environment == Environment::Production {
                            tracing::warn!(host, "SMTP_TLS=none: mail (and SMTP credentials) travel unencrypted");
                        }
                        Tls::None
                    }
                    SmtpTls::StartTls => Tls::Required(TlsParameters::new(host.clone())?),
                    SmtpTls::Tls => Tls::Wrapper(TlsParameters::new(host.clone())?),
                };
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
                    .port(settings.port)
                    .tls(tls)
                    .timeout(Some(SMTP_TIMEOUT));
                if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
                    builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
                }
                Some(builder.build())
            }
        };
        Ok(Mailer { transport, from, environment, magic_link_url: settings.magic_link_url.clone() })
    }

    /// The link the mail carries: `<MAGIC_LINK_URL>?token=<token>`.
    pub fn magic_link(&self, token: &str) -> String {
        let separator = if self.magic_link_url.contains('?') { '&' } else { '?' };
        format!("{}{separator}token={token}", self.magic_link_url)
    }

    /// Mails a sign-in link to `to`. Errors never contain the token.
    pub async fn send_magic_link(&self, to: &str, token: &str, valid_for: Duration) -> anyhow::Result<()> {
        let link = self.magic_link(token);
        let Some(transport) = &self.transport else {
            if self.environment == Environment::Production {
                anyhow::bail!("SMTP_HOST is not set: refusing to deliver a magic link in production");
            }
            // The ONLY place a magic-link token may ever be logged: development and test
            // instances without SMTP, so a developer can sign in. Never in production.
            tracing::info!(to, link = %link, "SMTP_HOST is not set: magic link written to the log instead of mailed");
            return Ok(());
        };
        let minutes = valid_for.as_secs().div_ceil(60);
        let body = format!(
            "Hello,\r\n\r\nUse this link to sign in to Recap. It works once, within {minutes} minutes:\r\n\r\n\
             {link}\r\n\r\nIf you did not ask to sign in, ignore this e-mail: nobody can use the link\r\n\
             without access to your mailbox.\r\n"
        );
        let to_mailbox = Mailbox::from_str(to).map_err(|e| anyhow::anyhow!("recipient is not a mailbox: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to_mailbox)
            .subject("Your Recap sign-in link")
            .header(ContentType::TEXT_PLAIN)
            .body(plain_body(body))?;
        transport.send(message).await.map_err(|e| anyhow::anyhow!("SMTP delivery failed: {e}"))?;
        Ok(())
    }
}

/// The body as 7bit when it can be (ASCII, CRLF lines under the 998-octet limit), so the link
/// stays on one line and readable in any client; otherwise lettre picks an encoding.
fn plain_body(body: String) -> lettre::message::Body {
    let seven_bit = body.is_ascii() && !body.contains('\0') && body.split("\r\n").all(|line| line.len() <= 998);
    if seven_bit {
        lettre::message::Body::dangerous_pre_encoded(body.into_bytes(), ContentTransferEncoding::SevenBit)
    } else {
        lettre::message::Body::new(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn mail(pairs: &[(&str, &str)]) -> Result<MailSettings, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        MailSettings::from_lookup(&|k: &str| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let m = mail(&[]).unwrap();
        assert_eq!((m.host.as_deref(), m.port, m.tls), (None, 587, SmtpTls::StartTls));
        assert_eq!(m.from, "Recap <no-reply@localhost>");
        assert_eq!(m.magic_link_url, "http://localhost:3000/auth/verify");
        let m = mail(&[("SMTP_HOST", "smtp.example.org"), ("SMTP_TLS", "TLS"), ("SMTP_PORT", "465")]).unwrap();
        assert_eq!((m.host.as_deref(), m.port, m.tls), (Some("smtp.example.org"), 465, SmtpTls::Tls));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (pairs, var) in [
            (&[("SMTP_PORT", "0")][..], "SMTP_PORT"),
            (&[("SMTP_PORT", "smtp")][..], "SMTP_PORT"),
            (&[("SMTP_TLS", "ssl3")][..], "SMTP_TLS"),
            (&[("SMTP_FROM", "not a mailbox")][..], "SMTP_FROM"),
            (&[("SMTP_HOST", "smtp://x")][..], "SMTP_HOST"),
            (&[("SMTP_USERNAME", "u")][..], "SMTP_PASSWORD"),
            (&[("SMTP_PASSWORD", "p")][..], "SMTP_USERNAME"),
            (&[("MAGIC_LINK_URL", "localhost:3000/verify")][..], "MAGIC_LINK_URL"),
        ] {
            let err = mail(pairs).err().unwrap_or_else(|| panic!("{pairs:?} accepted"));
            assert_eq!(err.var, var, "{err}");
        }
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let m = mail(&[("SMTP_USERNAME", "u"), ("SMTP_PASSWORD", "hunter2")]).unwrap();
        assert!(!format!("{m:?}").contains("hunter2"));
    }

    #[test]
    fn links_append_the_token() {
        let mailer = Mailer::new(&MailSettings::default(), Environment::Test).unwrap();
        assert_eq!(mailer.magic_link("abc"), "http://localhost:3000/auth/verify?token=abc");
        let settings =
            MailSettings { magic_link_url: "https://app.example.org/login?next=home".into(), ..Default::default() };
        let mailer = Mailer::new(&settings, Environment::Test).unwrap();
        assert_eq!(mailer.magic_link("abc"), "https://app.example.org/login?next=home&token=abc");
    }

    #[test]
    fn long_ascii_lines_stay_7bit() {
        let body = plain_body(format!("a\r\n{}\r\n", "x".repeat(200)));
        assert_eq!(body.encoding(), ContentTransferEncoding::SevenBit);
        assert_ne!(plain_body("café\r\n".into()).encoding(), ContentTransferEncoding::SevenBit);
    }
}
