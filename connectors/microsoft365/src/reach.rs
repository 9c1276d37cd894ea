//! Which mailboxes a request could search. With `mailboxes = ["*"]` the user list holds people
//! without an Exchange Online mailbox (guests, unlicensed or on-premises users: Graph answers
//! 404 `MailboxNotEnabledForRESTAPI` or `ResourceNotFound`) and mailboxes an application access
//! policy fences off (403 `ErrorAccessDenied`). Those are skipped and counted, and named to the
//! operator only: other people's accounts are not the subject's to see. A 403 on *every*
//! mailbox is not a policy but a missing permission, and fails the task. `dsr doctor` (`probe`)
//! opens each mailbox's inbox the same way, so the operator meets the skipped ones there first.
//! - https://learn.microsoft.com/en-us/graph/api/resources/mail-api-overview (Exchange Online mailboxes only)
//! - https://learn.microsoft.com/en-us/graph/auth-limit-mailbox-access (application access policies)
//! - https://learn.microsoft.com/en-us/graph/api/mailfolder-get (the inbox, by its well-known name)

use dsr_connector::{CheckReport, ConnectorError};

use crate::Microsoft365;
use crate::client::{PROCESSOR, needs_permission};
use crate::search::{Mailbox, NO_ARCHIVE};
use crate::wire::{Contact, MailFolder, ODataPage};

/// How many mailboxes `dsr doctor` opens.
const CHECKED_MAILBOXES: usize = 50;

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
    match error {
        ConnectorError::Permanent {
            status: Some(404),
            code,
            ..
        } if code == "MailboxNotEnabledForRESTAPI" || code == "ResourceNotFound" => Some(Unreachable::NoMailbox),
        ConnectorError::Permanent { status: Some(403), .. } => Some(Unreachable::Fenced),
        _ => None,
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
                status: Some(403),
                code: "every_mailbox".into(),
                message: format!(
                    "Graph refused every one of the {} mailbox(es): grant the app registration the application permissions \
                     Mail.ReadWrite and Contacts.ReadWrite with an administrator's consent, and check that no application \
                     access policy excludes the mailboxes the company wants searched ({said})",
                    self.fenced.len()
                ),
                said: None,
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

impl Microsoft365 {
    /// What `dsr doctor` reports: a token, the mailboxes to search, and each mailbox's inbox
    /// as a request would first reach it (in a large tenant the first `CHECKED_MAILBOXES`),
    /// so users without a mailbox and fenced mailboxes are named here; then one contact list
    /// read as dsr reads contacts, so a contact of another shape shows here first.
    pub async fn probe(&self) -> Result<CheckReport, ConnectorError> {
        let mailboxes = self.mailboxes().await?;
        let mut details = vec![format!("token issued; {} mailbox(es) to search", mailboxes.len())];
        let mut reach = Reach::new(self.config.all_mailboxes());
        for mailbox in mailboxes.iter().take(CHECKED_MAILBOXES) {
            let url = self
                .graph
                .url(&["users", &mailbox.key, "mailFolders", "inbox"], &[("$select", "id")])?;
            let inbox = self.graph.get::<MailFolder>(&mailbox.key, url).await;
            reach.admit(
                mailbox,
                inbox.map_err(|e| needs_permission(e, "Mail.ReadWrite", "read mail")),
            )?;
        }
        reach.finish()?;
        details.extend(reach.operator_notes());
        if let Some(first) = reach.searched.first() {
            let url = self.graph.url(&["users", &first.key, "contacts"], &[("$top", "1")])?;
            self.graph
                .get::<ODataPage<Contact>>(&first.key, url)
                .await
                .map_err(|e| needs_permission(e, "Contacts.ReadWrite", "read contacts"))?;
            details.push(format!(
                "mail and contacts readable ({} of {} mailbox(es) checked)",
                reach.searched.len(),
                mailboxes.len().min(CHECKED_MAILBOXES)
            ));
        }
        details.push(NO_ARCHIVE.into());
        Ok(CheckReport { ok: true, details })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, code: &str) -> ConnectorError {
        ConnectorError::Permanent {
            processor: PROCESSOR,
            status: Some(status),
            code: code.into(),
            message: "x".into(),
            said: None,
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
                    Err::<(), _>(refused(404, "MailboxNotEnabledForRESTAPI"))
                )
                .unwrap()
                .is_none()
        );
        assert!(
            reach
                .admit(&mailbox("fenced"), Err::<(), _>(refused(403, "ErrorAccessDenied")))
                .unwrap()
                .is_none()
        );
        assert!(reach.admit(&mailbox("ok"), Ok(())).unwrap().is_some());
        assert!(
            reach
                .admit(&mailbox("x"), Err::<(), _>(refused(400, "BadRequest")))
                .is_err()
        );
        reach.finish().unwrap();
        assert_eq!(reach.operator_notes().len(), 2);
        let mut configured = Reach::new(false);
        assert!(
            configured
                .admit(&mailbox("guest"), Err::<(), _>(refused(404, "ResourceNotFound")))
                .is_err()
        );
    }

    #[test]
    fn a_refusal_everywhere_is_a_missing_permission() {
        let mut reach = Reach::new(true);
        for m in ["a", "b"] {
            reach
                .admit(&mailbox(m), Err::<(), _>(refused(403, "ErrorAccessDenied")))
                .unwrap();
        }
        let err = reach.finish().unwrap_err();
        assert!(err.to_string().contains("Mail.ReadWrite"), "{err}");
        assert_eq!(err.code(), "permanent:403:every_mailbox");
        assert!(!err.is_retryable());
    }
}
