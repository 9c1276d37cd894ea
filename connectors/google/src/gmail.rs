//! Google Workspace mail (Gmail API, domain-wide delegation): the subject's messages exported
//! as `.eml` exactly as Gmail stores them (attachments stay inside). Erasure plans one item
//! per message: `messages.delete` (hard) or `messages.trash` (soft)
//! (https://developers.google.com/workspace/gmail/api/reference/rest/v1/users.messages/delete,
//! …/users.messages/trash); in soft mode a message already in the Trash is kept, since Gmail
//! empties the Trash itself after 30 days
//! (https://support.google.com/mail/answer/7401). A message that also names people other
//! than the subject and the mailbox's owner is marked shared.

use std::collections::BTreeSet;

use base64::Engine as _;
use dsr_connector::http::VendorClient;
use dsr_connector::{
    Action, ConnectorError, Email, FileMeta, Identities, IdentityKind, MatchClaim, PlanItem, Record, RecordSink,
};
use serde::Serialize;
use serde_json::json;

use crate::client::PROCESSOR;
use crate::config::DeleteMode;
use crate::wire::{Message, MessageList, RawMessage};
use crate::{Call, Google};

pub const SCOPE_FULL: &str = "https://mail.google.com/";
pub const SCOPE_MODIFY: &str = "https://www.googleapis.com/auth/gmail.modify";

/// Every address in a message's From, Sender, To, Cc, Bcc and Reply-To headers.
pub fn header_addresses(raw: &[u8]) -> Vec<String> {
    let Some(message) = mail_parser::MessageParser::default().parse_headers(raw) else {
        return Vec::new();
    };
    let lists = [
        message.from(),
        message.sender(),
        message.to(),
        message.cc(),
        message.bcc(),
        message.reply_to(),
    ];
    lists
        .into_iter()
        .flatten()
        .flat_map(|address| address.iter())
        .filter_map(|a| a.address().map(str::to_lowercase))
        .collect()
}

/// The Gmail search for any message with `email` in an address header.
pub fn search_for(email: &Email) -> String {
    let quoted = format!("\"{}\"", email.as_str().replace('"', ""));
    format!("from:{quoted} OR to:{quoted} OR cc:{quoted} OR bcc:{quoted}")
}

/// The headers a message's addresses are in, asked with `format=metadata`.
const ADDRESS_HEADERS: [&str; 6] = ["From", "Sender", "To", "Cc", "Bcc", "Reply-To"];

/// The headers whose addresses are a message's participants (who else it concerns).
const PARTICIPANT_HEADERS: [&str; 5] = ["From", "To", "Cc", "Bcc", "Reply-To"];

/// The plan category of a Gmail message (the bundle's too).
pub const CATEGORY: &str = "mail";

/// Why a message already in the Trash is left there in soft mode, and the subject's note.
pub const IN_TRASH: &str = "in Gmail's Trash, which Gmail empties after 30 days";
const TRASH_NOTE: &str = "Messages are moved to Gmail's Trash, which Gmail empties after 30 days.";

/// A message Gmail's search returned for the subject in one mailbox.
pub struct FoundMail {
    pub id: String,
    pub meta: MailMeta,
    pub from_subject: bool,
    /// Whether an address header names one of the subject's addresses exactly (Gmail's
    /// search matches loosely).
    pub hers: bool,
}

impl FoundMail {
    pub fn in_trash(&self) -> bool {
        self.meta.label_ids.iter().any(|l| l == "TRASH")
    }
}

/// What the mail record says beside the `.eml`, under Gmail's field names.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MailMeta {
    pub id: String,
    pub thread_id: String,
    pub label_ids: Vec<String>,
    pub snippet: Option<String>,
    /// The address headers as Gmail gave them (`format=metadata`): where the subject's
    /// address sits, and what a match claim points at.
    pub headers: std::collections::BTreeMap<String, String>,
}

impl MailMeta {
    /// The headers holding one of the subject's addresses.
    pub fn claims(&self, subject: &Identities) -> Vec<MatchClaim> {
        self.headers
            .iter()
            .filter(|(_, value)| subject.owns(IdentityKind::EmailList, value))
            .map(|(name, _)| MatchClaim::new(IdentityKind::EmailList, format!("/headers/{name}")))
            .collect()
    }

    /// How many distinct addresses in From, To, Cc, Bcc and Reply-To are neither the
    /// subject's nor the mailbox owner's.
    pub fn other_participants(&self, subject: &Identities, mailbox: &str) -> usize {
        let block: String = self
            .headers
            .iter()
            .filter(|(name, _)| PARTICIPANT_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)))
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect::<String>()
            + "\r\n";
        header_addresses(block.as_bytes())
            .into_iter()
            .filter(|a| !subject.owns_email(a) && !a.eq_ignore_ascii_case(mailbox))
            .collect::<BTreeSet<_>>()
            .len()
    }
}

/// "1 other participant", "3 other participants".
fn participants(n: usize) -> String {
    if n == 1 {
        "1 other participant".into()
    } else {
        format!("{n} other participants")
    }
}

/// The mail record: Gmail's metadata, the mailbox and the stored `.eml`.
#[derive(Serialize)]
struct MailRecord<'a> {
    #[serde(flatten)]
    meta: &'a MailMeta,
    mailbox: &'a str,
    file: &'a str,
    sha256: &'a str,
}

impl Google {
    fn gmail(&self, mailbox: &str) -> VendorClient {
        self.gmail_for(mailbox, self.workspace_mode())
    }

    /// `messages.delete` needs the full scope; reading and `messages.trash` need modify.
    fn gmail_for(&self, mailbox: &str, mode: DeleteMode) -> VendorClient {
        let scope = match mode {
            DeleteMode::Hard => SCOPE_FULL,
            DeleteMode::Soft => SCOPE_MODIFY,
        };
        self.client_for(&[scope], Some(mailbox))
    }

    fn workspace_mode(&self) -> DeleteMode {
        self.config
            .workspace
            .as_ref()
            .map(|w| w.delete_mode)
            .unwrap_or_default()
    }

    fn gmail_base(&self, mailbox: &str) -> String {
        format!(
            "{}/users/{}",
            self.config.gmail_url.trim_end_matches('/'),
            urlencode(mailbox)
        )
    }

    /// One cheap read of `mailbox`: proves the delegation and scopes work.
    pub(crate) async fn probe_mailbox(&self, mailbox: &str) -> Result<(), ConnectorError> {
        let url = format!("{}/messages", self.gmail_base(mailbox));
        self.gmail(mailbox)
            .json::<MessageList>(mailbox, |http| http.get(&url).query(&[("maxResults", "1")]))
            .await
            .map_err(|e| delegation_hint(e, &self.tokens.account().email))?;
        Ok(())
    }

    /// Ids of messages matching `q` in `mailbox`, all pages, Spam and Trash included: mail
    /// there is still held (`includeSpamTrash` is false by default,
    /// https://developers.google.com/gmail/api/reference/rest/v1/users.messages/list).
    async fn list_ids(&self, client: &VendorClient, mailbox: &str, q: &str) -> Result<Vec<String>, ConnectorError> {
        let url = format!("{}/messages", self.gmail_base(mailbox));
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![
                ("q", q.to_string()),
                ("maxResults", "500".to_string()),
                ("includeSpamTrash", "true".to_string()),
            ];
            if let Some(t) = &token {
                query.push(("pageToken", t.clone()));
            }
            let page: MessageList = client
                .json(mailbox, |http| http.get(&url).query(&query))
                .await
                .map_err(|e| delegation_hint(e, &self.tokens.account().email))?;
            ids.extend(page.messages.into_iter().map(|m| m.id));
            token = page.next_page_token;
            if token.is_none() {
                return Ok(ids);
            }
        }
    }

    /// Ids of the messages in `mailbox` that Gmail's search returns for any of the subject's
    /// addresses (loosely: each still needs the exact-address check in `read_mail`).
    async fn candidate_ids(
        &self,
        client: &VendorClient,
        mailbox: &str,
        subject: &Identities,
    ) -> Result<BTreeSet<String>, ConnectorError> {
        let mut ids = BTreeSet::new();
        for email in &subject.emails {
            ids.extend(self.list_ids(client, mailbox, &search_for(email)).await?);
        }
        Ok(ids)
    }

    /// One message's address headers and labels (`format=metadata`), and whether it names
    /// one of the subject's addresses exactly: the raw message is fetched only for those
    /// that do. `None` when it is gone meanwhile.
    async fn read_mail(
        &self,
        client: &VendorClient,
        mailbox: &str,
        id: &str,
        subject: &Identities,
    ) -> Result<Option<FoundMail>, ConnectorError> {
        let url = format!("{}/messages/{}", self.gmail_base(mailbox), urlencode(id));
        let mut query = vec![("format", "metadata")];
        query.extend(ADDRESS_HEADERS.iter().map(|h| ("metadataHeaders", *h)));
        let message: Message = match client.json(mailbox, |http| http.get(&url).query(&query)).await {
            Ok(m) => m,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        // The headers as a header block, so addresses are read as an e-mail parser reads them.
        let mut headers = std::collections::BTreeMap::new();
        for h in message
            .payload
            .headers
            .iter()
            .filter(|h| ADDRESS_HEADERS.iter().any(|a| a.eq_ignore_ascii_case(&h.name)))
        {
            let value = h.value.replace(['\r', '\n'], " ");
            headers
                .entry(h.name.clone())
                .and_modify(|v: &mut String| {
                    v.push_str(", ");
                    v.push_str(&value)
                })
                .or_insert(value);
        }
        let block: String = headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect::<String>()
            + "\r\n";
        // Gmail's search matches loosely: only the subject's exact addresses make it hers.
        let hers = header_addresses(block.as_bytes()).iter().any(|a| subject.owns_email(a));
        let from = mail_parser::MessageParser::default()
            .parse_headers(block.as_bytes())
            .and_then(|m| {
                m.from()
                    .and_then(|f| f.first())
                    .and_then(|a| a.address())
                    .map(str::to_lowercase)
            });
        Ok(Some(FoundMail {
            hers,
            from_subject: from.is_some_and(|f| subject.owns_email(&f)),
            meta: MailMeta {
                id: message.id,
                thread_id: message.thread_id.unwrap_or_default(),
                label_ids: message.label_ids,
                snippet: message.snippet,
                headers,
            },
            id: id.to_string(),
        }))
    }

    /// The message exactly as Gmail stores it (`format=raw`), once, for the bundle.
    async fn raw_mail(
        &self,
        client: &VendorClient,
        mailbox: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>, ConnectorError> {
        let url = format!("{}/messages/{}", self.gmail_base(mailbox), urlencode(id));
        let message: RawMessage = match client
            .json(mailbox, |http| http.get(&url).query(&[("format", "raw")]))
            .await
        {
            Ok(m) => m,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let encoded = message.raw.trim_end_matches('=');
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .map(Some)
            .map_err(|e| ConnectorError::RetryLater {
                processor: PROCESSOR,
                code: "invalid_response".into(),
                message: format!("Gmail returned a raw message that is not base64url: {e}"),
                after: None,
            })
    }

    /// Every message Gmail's search returns for the subject in `mailbox`, Spam and Trash
    /// included, with its labels and whether it is hers.
    pub async fn candidate_mail(&self, mailbox: &str, subject: &Identities) -> Result<Vec<FoundMail>, ConnectorError> {
        let client = self.gmail(mailbox);
        let mut found = Vec::new();
        for id in self.candidate_ids(&client, mailbox, subject).await? {
            if let Some(mail) = self.read_mail(&client, mailbox, &id, subject).await? {
                found.push(mail);
            }
        }
        Ok(found)
    }

    /// The subject's messages in `mailbox` (exact addresses only), Spam and Trash included,
    /// with their labels.
    pub async fn find_mail(&self, mailbox: &str, subject: &Identities) -> Result<Vec<FoundMail>, ConnectorError> {
        let mut found = self.candidate_mail(mailbox, subject).await?;
        found.retain(|m| m.hers);
        Ok(found)
    }

    /// Exports each message as an `.eml` file and a record that points at it.
    pub async fn export_mail(&self, subject: &Identities, sink: &mut dyn RecordSink) -> Result<u64, ConnectorError> {
        let Some(workspace) = &self.config.workspace else {
            return Ok(0);
        };
        let mut count = 0;
        for mailbox in &workspace.mailboxes {
            let client = self.gmail(mailbox);
            for mail in self.find_mail(mailbox, subject).await? {
                // One message in memory at a time: fetched, stored, let go.
                let Some(raw) = self.raw_mail(&client, mailbox, &mail.id).await? else {
                    continue;
                };
                let body = futures::stream::once(async move { Ok(bytes::Bytes::from(raw)) });
                let meta = FileMeta {
                    folder: "mail".into(),
                    name: format!("{}.eml", mail.id),
                    media_type: "message/rfc822".into(),
                };
                let stored = sink.attach(meta, Box::pin(body)).await?;
                let data = json!(MailRecord {
                    meta: &mail.meta,
                    mailbox,
                    file: &stored.path,
                    sha256: &stored.sha256,
                });
                sink.accept(Record {
                    category: "mail".into(),
                    claims: mail.meta.claims(subject),
                    id: Some(mail.id),
                    provided_by_subject: mail.from_subject,
                    data,
                })
                .await?;
                count += 1;
            }
        }
        Ok(count)
    }

    /// One item per message Gmail's search returned in each mailbox, hers or not (the
    /// engine's check refuses those whose headers do not name her): `messages.delete`, or
    /// `messages.trash` in soft mode, where a message already in the Trash is kept. Also the
    /// subject's note for soft mode.
    pub async fn plan_mail(&self, subject: &Identities) -> Result<(Vec<PlanItem>, Vec<String>), ConnectorError> {
        let Some(workspace) = &self.config.workspace else {
            return Ok((vec![], vec![]));
        };
        let mode = workspace.delete_mode;
        let mut items = Vec::new();
        for mailbox in &workspace.mailboxes {
            for mail in self.candidate_mail(mailbox, subject).await? {
                let target = match mode {
                    DeleteMode::Hard => Call::DeleteMessage {
                        mailbox: mailbox.clone(),
                        id: mail.id.clone(),
                    },
                    DeleteMode::Soft => Call::TrashMessage {
                        mailbox: mailbox.clone(),
                        id: mail.id.clone(),
                    },
                };
                let keep = mode == DeleteMode::Soft && mail.in_trash();
                let mut item = PlanItem::new(
                    format!("{CATEGORY} {mailbox}/{}", mail.id),
                    CATEGORY,
                    if keep { Action::Keep } else { Action::Delete },
                    json!(target),
                    json!(mail.meta),
                    mail.meta.claims(subject),
                );
                if keep {
                    item = item.reason(IN_TRASH);
                }
                let others = mail.meta.other_participants(subject, mailbox);
                if others > 0 {
                    item = item.shared(participants(others));
                }
                items.push(item);
            }
        }
        let notes = if mode == DeleteMode::Soft && !items.is_empty() {
            vec![TRASH_NOTE.to_string()]
        } else {
            vec![]
        };
        Ok((items, notes))
    }

    /// `messages.delete` (hard) or `messages.trash` (soft) of one message; a message gone
    /// meanwhile (404) is gone all the same: `Ok(false)`.
    pub(crate) async fn remove_mail(&self, mailbox: &str, id: &str, mode: DeleteMode) -> Result<bool, ConnectorError> {
        let client = self.gmail_for(mailbox, mode);
        let url = format!("{}/messages/{}", self.gmail_base(mailbox), urlencode(id));
        match mode {
            DeleteMode::Hard => client.remove(mailbox, |http| http.delete(&url)).await,
            DeleteMode::Soft => {
                let url = format!("{url}/trash");
                client.remove(mailbox, |http| http.post(&url)).await
            }
        }
    }
}

/// A path segment, percent-encoded.
pub fn urlencode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// 401/403 at a Workspace endpoint usually means domain-wide delegation is not set up.
fn delegation_hint(error: ConnectorError, account: &str) -> ConnectorError {
    error.explain_forbidden(&format!(
        "in the Workspace admin console (Security > API controls > Domain-wide delegation) allow {account}'s client id the Gmail and contacts scopes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_come_from_every_address_header() {
        let raw =
            b"From: Kari <Kari@Example.no>\r\nTo: a@x.no, \"B\" <b@x.no>\r\nCc: c@x.no\r\nSubject: hi\r\n\r\nbody";
        assert_eq!(header_addresses(raw), ["kari@example.no", "a@x.no", "b@x.no", "c@x.no"]);
    }

    #[test]
    fn the_search_quotes_the_address() {
        let e = Email::parse("kari@example.no").unwrap();
        assert_eq!(
            search_for(&e),
            "from:\"kari@example.no\" OR to:\"kari@example.no\" OR cc:\"kari@example.no\" OR bcc:\"kari@example.no\""
        );
    }
}
