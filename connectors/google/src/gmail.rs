//! Google Workspace mail (Gmail API, domain-wide delegation): finding the subject's messages in
//! a mailbox, which both access (`access.rs`) and erasure (`erase.rs`) start from. Gmail's
//! search is loose, so each message it returns is read once more with `format=metadata` and
//! is hers only where an address header names one of her addresses exactly; Spam and the Trash
//! are searched too (`includeSpamTrash` is false by default).
//! https://developers.google.com/workspace/gmail/api/reference/rest/v1/users.messages/list,
//! https://developers.google.com/workspace/gmail/api/reference/rest/v1/users.messages/get

use std::collections::{BTreeMap, BTreeSet};

use dsr_connector::http::{PageGuard, VendorClient, path_segment};
use dsr_connector::{ConnectorError, Email, Identities, IdentityKind, MatchClaim};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::Google;
use crate::client::{MAX_PAGES, PROCESSOR};
use crate::config::DeleteMode;
use crate::wire::{Message, MessageList};

pub const SCOPE_FULL: &str = "https://mail.google.com/";
pub const SCOPE_MODIFY: &str = "https://www.googleapis.com/auth/gmail.modify";

/// The plan and bundle category of a Gmail message.
pub const CATEGORY: &str = "mail";

/// Message reads sent at once to one mailbox: as many as the client's per-user limiter lets
/// through ([`crate::client::GMAIL_LIMITS`]), answered in the search's order.
pub(crate) const READS_IN_FLIGHT: usize = crate::client::GMAIL_LIMITS.concurrent;

/// The headers a message's addresses are in, asked with `format=metadata`.
const ADDRESS_HEADERS: [&str; 6] = ["From", "Sender", "To", "Cc", "Bcc", "Reply-To"];

/// The headers whose addresses are a message's participants (who else it concerns).
const PARTICIPANT_HEADERS: [&str; 5] = ["From", "To", "Cc", "Bcc", "Reply-To"];

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

/// `headers` as a header block, so addresses are read as an e-mail parser reads them.
fn header_block<'a>(headers: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    headers
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect::<String>()
        + "\r\n"
}

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
    pub headers: BTreeMap<String, String>,
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
        let participants = self
            .headers
            .iter()
            .filter(|(name, _)| PARTICIPANT_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)));
        header_addresses(header_block(participants).as_bytes())
            .into_iter()
            .filter(|a| !subject.owns_email(a) && !a.eq_ignore_ascii_case(mailbox))
            .collect::<BTreeSet<_>>()
            .len()
    }
}

impl Google {
    /// Reading and `messages.trash` need gmail.modify; `messages.delete` the full scope.
    pub(crate) fn gmail(&self, mailbox: &str) -> VendorClient {
        self.gmail_for(mailbox, self.config.delete_mode())
    }

    pub(crate) fn gmail_for(&self, mailbox: &str, mode: DeleteMode) -> VendorClient {
        let scope = match mode {
            DeleteMode::Hard => SCOPE_FULL,
            DeleteMode::Soft => SCOPE_MODIFY,
        };
        self.client_for(&[scope], Some(mailbox))
            .with_limiter(self.gmail_limits.clone())
    }

    /// `…/users/{mailbox}/messages`, or one message's URL with `id`, each one encoded segment.
    pub(crate) fn messages_url(&self, mailbox: &str, id: Option<&str>) -> Result<String, ConnectorError> {
        let base = format!(
            "{}/users/{}/messages",
            self.config.gmail_url.trim_end_matches('/'),
            path_segment(PROCESSOR, mailbox)?
        );
        Ok(match id {
            Some(id) => format!("{base}/{}", path_segment(PROCESSOR, id)?),
            None => base,
        })
    }

    /// One cheap read of `mailbox`: proves the delegation and scopes work.
    pub(crate) async fn probe_mailbox(&self, mailbox: &str) -> Result<(), ConnectorError> {
        let url = self.messages_url(mailbox, None)?;
        self.gmail(mailbox)
            .json::<MessageList>(mailbox, |http| http.get(&url).query(&[("maxResults", "1")]))
            .await
            .map_err(|e| self.delegation_hint(e))?;
        Ok(())
    }

    /// Ids of messages matching `q` in `mailbox`, all pages, Spam and Trash included: mail
    /// there is still held (`includeSpamTrash` is false by default,
    /// https://developers.google.com/gmail/api/reference/rest/v1/users.messages/list).
    async fn list_ids(&self, client: &VendorClient, mailbox: &str, q: &str) -> Result<Vec<String>, ConnectorError> {
        let url = self.messages_url(mailbox, None)?;
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = PageGuard::new(PROCESSOR, "users.messages.list", MAX_PAGES);
        loop {
            let mut query = vec![("q", q), ("maxResults", "500"), ("includeSpamTrash", "true")];
            query.extend(token.as_deref().map(|t| ("pageToken", t)));
            let page: MessageList = client
                .json(mailbox, |http| http.get(&url).query(&query))
                .await
                .map_err(|e| self.delegation_hint(e))?;
            let count = page.messages.len();
            ids.extend(page.messages.into_iter().map(|m| m.id));
            token = pages.next(count, page.next_page_token)?;
            if token.is_none() {
                return Ok(ids);
            }
        }
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
        let url = self.messages_url(mailbox, Some(id))?;
        let mut query = vec![("format", "metadata")];
        query.extend(ADDRESS_HEADERS.iter().map(|h| ("metadataHeaders", *h)));
        let message: Message = match client.json(mailbox, |http| http.get(&url).query(&query)).await {
            Ok(m) => m,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut headers = BTreeMap::new();
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
        let block = header_block(headers.iter());
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

    /// Every message Gmail's search returns for any of the subject's addresses in `mailbox`,
    /// Spam and Trash included, with its labels and whether it is hers.
    pub(crate) async fn candidate_mail(
        &self,
        mailbox: &str,
        subject: &Identities,
    ) -> Result<Vec<FoundMail>, ConnectorError> {
        let client = &self.gmail(mailbox);
        // One search per address, together; each one's pages follow one another.
        let searches = subject
            .emails
            .iter()
            .map(|email| async move { self.list_ids(client, mailbox, &search_for(email)).await });
        let ids: BTreeSet<String> = futures::future::try_join_all(searches)
            .await?
            .into_iter()
            .flatten()
            .collect();
        // The headers of up to READS_IN_FLIGHT messages read at once, taken in id order
        // whatever order Gmail answers in.
        let reads = futures::stream::iter(ids)
            .map(|id| async move { self.read_mail(client, mailbox, &id, subject).await })
            .buffered(READS_IN_FLIGHT);
        let found: Vec<Option<FoundMail>> = reads.try_collect().await?;
        Ok(found.into_iter().flatten().collect())
    }
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
