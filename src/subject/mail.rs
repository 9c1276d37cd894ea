//! E-mail to subjects through `[smtp]` (lettre; STARTTLS or implicit TLS over rustls). Errors
//! never quote the recipient: a mail server's refusal often repeats the address.

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{SmtpConfig, SmtpSecurity};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("[smtp] cannot be used: {0}")]
    Config(String),
    #[error("the address is not one mail can go to")]
    Address,
    #[error("the mail server {host} did not take the message: {reason}")]
    Send { host: String, reason: String },
}

/// One message: plain text, UTF-8.
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
    /// The whole delivery of one message, not only the connect (lettre's own timeout).
    limit: std::time::Duration,
}

impl Mailer {
    pub fn new(config: &SmtpConfig) -> Result<Mailer, MailError> {
        let fail = |e: lettre::transport::smtp::Error| MailError::Config(format!("{}: {e}", config.host));
        // The public web's authorities, and `ca_file`'s; the certificate must name `host`.
        let tls = || -> Result<TlsParameters, MailError> {
            let mut builder = TlsParameters::builder(config.host.clone());
            if let Some(path) = &config.ca_file {
                let pem = std::fs::read(path)
                    .map_err(|e| MailError::Config(format!("smtp.ca_file: cannot read {}: {e}", path.display())))?;
                let ca = Certificate::from_pem(&pem).map_err(|e| {
                    MailError::Config(format!(
                        "smtp.ca_file: {} is not a PEM certificate: {e}",
                        path.display()
                    ))
                })?;
                builder = builder.add_root_certificate(ca);
            }
            builder.build_rustls().map_err(fail)
        };
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host);
        let builder = match config.security {
            SmtpSecurity::Starttls => builder.tls(Tls::Required(tls()?)),
            SmtpSecurity::Tls => builder.tls(Tls::Wrapper(tls()?)),
            // Only to a loopback host (the config refuses anything else).
            SmtpSecurity::None => builder,
        };
        let mut builder = builder.port(config.port()).timeout(Some(config.timeout));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            let password = password
                .resolve()
                .map_err(|e| MailError::Config(format!("smtp.password: {e}")))?;
            builder = builder.credentials(Credentials::new(user.clone(), password.expose_secret().to_string()));
        }
        let from = config
            .from
            .parse::<Mailbox>()
            .map_err(|e| MailError::Config(format!("smtp.from: {e}")))?;
        Ok(Mailer {
            transport: builder.build(),
            from,
            host: config.host.clone(),
            limit: config.timeout,
        })
    }

    pub async fn send(&self, mail: Mail) -> Result<(), MailError> {
        let to: Mailbox = mail.to.parse().map_err(|_| MailError::Address)?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(mail.text)
            .map_err(|e| MailError::Config(format!("the message cannot be built: {e}")))?;
        // A server that accepts the connection and then stalls must not hold a worker.
        match tokio::time::timeout(self.limit, self.transport.send(message)).await {
            Ok(sent) => sent.map(|_| ()).map_err(|e| MailError::Send {
                host: self.host.clone(),
                reason: without(&e.to_string(), &mail.to),
            }),
            Err(_) => Err(MailError::Send {
                host: self.host.clone(),
                reason: format!("no answer within {:?} ([smtp] timeout)", self.limit),
            }),
        }
    }

    /// Whether the server answers (`dsr doctor`).
    pub async fn check(&self) -> Result<(), MailError> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(MailError::Send {
                host: self.host.clone(),
                reason: "it did not answer NOOP".into(),
            }),
            Err(e) => Err(MailError::Send {
                host: self.host.clone(),
                reason: e.to_string(),
            }),
        }
    }
}

/// `text` with every form of `address` blanked out.
fn without(text: &str, address: &str) -> String {
    let mut out = text.to_string();
    for form in [address.to_string(), address.to_lowercase()] {
        if !form.is_empty() {
            out = out.replace(&form, "[the subject's address]");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_refusal_never_repeats_the_address() {
        let said = super::without(
            "550 5.1.1 <Kari@Example.no>: unknown; kari@example.no",
            "Kari@Example.no",
        );
        assert!(!said.to_lowercase().contains("kari@example.no"), "{said}");
    }
}
