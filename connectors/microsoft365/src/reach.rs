//! Which mailboxes a request could search. With `mailboxes = ["*"]` the user list holds people
//! without an Exchange Online mailbox (guests, unlicensed or on-premises users: Graph answers
//! 404 `MailboxNotEnabledForRESTAPI` or `ResourceNotFound`) and mailboxes an application access
//! policy fences off (403 `ErrorAccessDenied`). Those are skipped and counted, and named to the
//! operator only: other people's accounts are not the subject's to see. A 403 on *every*
//! mailbox is not a policy but a missing permission, and fails the task.
//! - https://learn.microsoft.com/en-us/graph/api/resources/mail-api-overview (Exchange Online mailboxes only)
//! - https://learn.microsoft.com/en-us/graph/auth-limit-mailbox-access (application access policies)

use dsr_connector::ConnectorError;

use crate::access::Mailbox;
use crate::client::PROCESSOR;

/// Why a mailbox could not be searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// The user has no Exchange Online mailbox.
    NoMailbox,
    /// An application access policy keeps the app out (or the permission is missing).
    Fenced,
}

/// Whether `error`, from the first call into a mailbox, says the mailbox cannot be searched.
pub fn unreachable(error: &ConnectorError) -> Option<Unreachable> {
    let ConnectorError::Permanent { code, .. } = error else {
        return None;
    };
    if code.starts_with("404:MailboxNotEnabledForRESTAPI") || code.starts_with("404:ResourceNotFound") {
        Some(Unreachable::NoMailbox)
    } else if code.starts_with("403:ErrorAccessDenied") || code == "403" || code.starts_with("403:") {
        Some(Unreachable::Fenced)
    } else {
        None
    }
}

/// The mailboxes searched and those skipped, over one run.
#[derive(Debug, Default)]
pub struct Reach {
    /// Whether mailboxes come from the tenant's user list (`["*"]`) rather than the config.
    listed: bool,
    pub searched: Vec<Mailbox>,
    pub no_mailbox: Vec<String>,
    pub fenced: Vec<String>,
    first_fenced: Option<ConnectorError>,
}

impl Reach {
    pub fn new(listed: bool) -> Reach {
        Reach {
            listed,
            ..Default::default()
        }
    }

    /// Records the outcome of the first call into `mailbox`: `Ok(true)` to go on with it,
    /// `Ok(false)` to skip it, or the error when it is not a reason to skip (a configured
    /// mailbox that does not answer is the operator's to fix).
    pub fn admit<T>(
        &mut self,
        mailbox: &Mailbox,
        first: Result<T, ConnectorError>,
    ) -> Result<Option<T>, ConnectorError> {
        match first {
            Ok(value) => {
                self.searched.push(mailbox.clone());
                Ok(Some(value))
            }
            Err(e) if self.listed => match unreachable(&e) {
                Some(Unreachable::NoMailbox) => {
                    self.no_mailbox.push(mailbox.address.clone());
                    Ok(None)
                }
                Some(Unreachable::Fenced) => {
                    self.fenced.push(mailbox.address.clone());
                    self.first_fenced.get_or_insert(e);
                    Ok(None)
                }
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// After the last mailbox: a refusal everywhere is a missing permission, not a policy.
    pub fn finish(&mut self) -> Result<(), ConnectorError> {
        if self.searched.is_empty() && !self.fenced.is_empty() {
            let said = self.first_fenced.take().map(|e| e.to_string()).unwrap_or_default();
            return Err(ConnectorError::Permanent {
                processor: PROCESSOR,
                code: "403:every_mailbox".into(),
                message: format!(
                    "Graph refused every one of the {} mailbox(es): grant the app registration the application permissions \
                     Mail.ReadWrite and Contacts.ReadWrite with an administrator's consent, and check that no application \
                     access policy excludes the mailboxes the company wants searched ({said})",
                    self.fenced.len()
                ),
            });
        }
        if !self.no_mailbox.is_empty() || !self.fenced.is_empty() {
            tracing::warn!(
                searched = self.searched.len(),
                without_mailbox = self.no_mailbox.len(),
                fenced = self.fenced.len(),
                "Microsoft 365: some users' mailboxes could not be searched"
            );
        }
        Ok(())
    }

    /// What the operator is told (never the subject): the accounts skipped, by name.
    pub fn operator_notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if !self.no_mailbox.is_empty() {
            notes.push(format!(
                "{} user(s) have no Exchange Online mailbox (guests, unlicensed or on-premises users) and were skipped: {}",
                self.no_mailbox.len(),
                self.no_mailbox.join(", ")
            ));
        }
        if !self.fenced.is_empty() {
            notes.push(format!(
                "{} mailbox(es) are closed to the app by an application access policy and were not searched: {}; \
                 widen the policy if the company's data lives there",
                self.fenced.len(),
                self.fenced.join(", ")
            ));
        }
        notes
    }

    /// What the subject is told: how many mailboxes were searched and how many could not be
    /// (a user without a mailbox holds no mail to search, and is not counted).
    pub fn subject_note(&self) -> Option<String> {
        (!self.fenced.is_empty()).then(|| {
            format!(
                "{} of the company's mailboxes were searched; {} could not be (closed to this search by the company's \
                 access policy), and the company has been told.",
                self.searched.len(),
                self.fenced.len()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: &str) -> ConnectorError {
        ConnectorError::Permanent {
            processor: PROCESSOR,
            code: code.into(),
            message: "x".into(),
        }
    }

    fn mailbox(a: &str) -> Mailbox {
        Mailbox {
            key: a.into(),
            address: a.into(),
            aliases: vec![],
        }
    }

    #[test]
    fn mailbox_less_and_fenced_users_are_skipped_only_from_the_user_list() {
        let mut reach = Reach::new(true);
        assert!(
            reach
                .admit(
                    &mailbox("guest"),
                    Err::<(), _>(refused("404:MailboxNotEnabledForRESTAPI"))
                )
                .unwrap()
                .is_none()
        );
        assert!(
            reach
                .admit(&mailbox("fenced"), Err::<(), _>(refused("403:ErrorAccessDenied")))
                .unwrap()
                .is_none()
        );
        assert!(reach.admit(&mailbox("ok"), Ok(())).unwrap().is_some());
        assert!(
            reach
                .admit(&mailbox("x"), Err::<(), _>(refused("400:BadRequest")))
                .is_err()
        );
        reach.finish().unwrap();
        assert_eq!(reach.operator_notes().len(), 2);
        let mut configured = Reach::new(false);
        assert!(
            configured
                .admit(&mailbox("guest"), Err::<(), _>(refused("404:ResourceNotFound")))
                .is_err()
        );
    }

    #[test]
    fn a_refusal_everywhere_is_a_missing_permission() {
        let mut reach = Reach::new(true);
        for m in ["a", "b"] {
            reach
                .admit(&mailbox(m), Err::<(), _>(refused("403:ErrorAccessDenied")))
                .unwrap();
        }
        let err = reach.finish().unwrap_err();
        assert!(err.to_string().contains("Mail.ReadWrite"), "{err}");
        assert!(!err.is_retryable());
    }
}
