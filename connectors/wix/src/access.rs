//! Finding what the website holds about the subject (Art. 15): contacts, the member account,
//! form submissions that name her address or phone as a whole value, her comments as a
//! member, and her e-mail marketing status.

use std::collections::BTreeSet;

use dsr_connector::{ConnectorError, Identities, Record, RecordSink};
use serde_json::{Value, json};

use crate::Wix;

const PAGE: u64 = 100;

/// Whether `value` is one of the subject's addresses or phones, as a whole (case-insensitive):
/// `annekari.nordmann@…` is not `kari.nordmann@…`.
pub fn is_subjects(value: &str, subject: &Identities) -> bool {
    let value = value.trim();
    subject.emails.iter().any(|e| e.matches(value))
        || subject.phones.iter().any(|p| p.as_str() == value.replace(' ', ""))
}

/// Whether the subject submitted the form herself: every address in it is hers.
fn submitted_by_subject(fields: &Value, subject: &Identities) -> bool {
    let addresses: Vec<&str> = fields
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, v)| v.as_str())
        .filter(|v| v.contains('@') && !v.contains(' '))
        .collect();
    !addresses.is_empty() && addresses.iter().all(|a| is_subjects(a, subject))
}

impl Wix {
    /// Contacts with one of the subject's addresses or phones, each once; offset paging up to
    /// the reported total (a short page is not the end).
    pub async fn find_contacts(&self, subject: &Identities) -> Result<Vec<Value>, ConnectorError> {
        let mut seen = BTreeSet::new();
        let mut found = Vec::new();
        let filters = subject
            .emails
            .iter()
            .map(|e| json!({"info.emails.email": {"$eq": e.as_str()}}))
            .chain(
                subject
                    .phones
                    .iter()
                    .map(|p| json!({"info.phones.e164Phone": {"$eq": p.as_str()}})),
            );
        for filter in filters {
            let mut offset = 0;
            loop {
                let body = json!({"query": {"filter": filter, "paging": {"limit": PAGE, "offset": offset}}});
                let page = self.post("/contacts/v4/contacts/query", &body).await?;
                let contacts = page["contacts"].as_array().cloned().unwrap_or_default();
                offset += contacts.len() as u64;
                for c in contacts {
                    if seen.insert(c["id"].as_str().unwrap_or_default().to_string()) {
                        found.push(c);
                    }
                }
                let total = page["pagingMetadata"]["total"].as_u64().unwrap_or(0);
                if offset >= total || page["pagingMetadata"]["count"].as_u64() == Some(0) {
                    break;
                }
            }
        }
        Ok(found)
    }

    pub async fn find_members(&self, subject: &Identities) -> Result<Vec<Value>, ConnectorError> {
        let mut found = Vec::new();
        for email in &subject.emails {
            let body = json!({"fieldsets": ["FULL"], "query": {"filter": {"loginEmail": {"$eq": email.as_str()}}}});
            found.extend(
                self.post("/members/v1/members/query", &body).await?["members"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        Ok(found)
    }

    /// Submissions in every configured namespace with a field that is the subject's.
    pub async fn find_submissions(&self, subject: &Identities) -> Result<Vec<Value>, ConnectorError> {
        let mut found = Vec::new();
        for namespace in &self.config.form_namespaces {
            let mut cursor: Option<String> = None;
            loop {
                let body = json!({"query": {"filter": {"namespace": namespace}, "cursorPaging": {"limit": PAGE, "cursor": cursor}}});
                let page = self
                    .post("/form-submission-service/v4/submissions/namespace/query", &body)
                    .await?;
                for submission in page["submissions"].as_array().into_iter().flatten() {
                    let fields = submission["submissions"].as_object();
                    if fields
                        .into_iter()
                        .flatten()
                        .any(|(_, v)| v.as_str().is_some_and(|v| is_subjects(v, subject)))
                    {
                        found.push(submission.clone());
                    }
                }
                cursor = page["metadata"]["cursors"]["next"].as_str().map(String::from);
                if cursor.is_none() {
                    break;
                }
            }
        }
        Ok(found)
    }

    pub async fn find_comments(&self, member_ids: &[String]) -> Result<Vec<Value>, ConnectorError> {
        let mut found = Vec::new();
        for member in member_ids {
            let mut cursor: Option<String> = None;
            loop {
                let body = json!({"query": {"filter": {"author.memberId": {"$eq": member}}, "cursorPaging": {"limit": PAGE, "cursor": cursor}}});
                let page = self.post("/comments/v1/comments/query-cursor", &body).await?;
                found.extend(page["comments"].as_array().cloned().unwrap_or_default());
                cursor = page["pagingMetadata"]["cursors"]["next"].as_str().map(String::from);
                if cursor.is_none() {
                    break;
                }
            }
        }
        Ok(found)
    }

    pub async fn subscriptions(&self, subject: &Identities) -> Result<Vec<Value>, ConnectorError> {
        if subject.emails.is_empty() {
            return Ok(vec![]);
        }
        let emails: Vec<&str> = subject.emails.iter().map(|e| e.as_str()).collect();
        let body = json!({"filter": {"email": {"$in": emails}}});
        Ok(self
            .post("/email-marketing/v1/email-subscriptions/query", &body)
            .await?["subscriptions"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    pub async fn export(&self, subject: &Identities, sink: &mut dyn RecordSink) -> Result<u64, ConnectorError> {
        let mut count = 0;
        let mut put =
            async |category: &str, id: Option<String>, provided: bool, data: Value| -> Result<(), ConnectorError> {
                sink.accept(Record {
                    category: category.into(),
                    id,
                    provided_by_subject: provided,
                    data,
                })
                .await?;
                Ok(())
            };
        for contact in self.find_contacts(subject).await? {
            put("contacts", contact["id"].as_str().map(String::from), true, contact).await?;
            count += 1;
        }
        let members = self.find_members(subject).await?;
        let member_ids: Vec<String> = members
            .iter()
            .filter_map(|m| m["id"].as_str().map(String::from))
            .collect();
        for member in members {
            put("members", member["id"].as_str().map(String::from), true, member).await?;
            count += 1;
        }
        for submission in self.find_submissions(subject).await? {
            let own = submitted_by_subject(&submission["submissions"], subject);
            put(
                "form_submissions",
                submission["id"].as_str().map(String::from),
                own,
                submission,
            )
            .await?;
            count += 1;
        }
        for comment in self.find_comments(&member_ids).await? {
            put("comments", comment["id"].as_str().map(String::from), true, comment).await?;
            count += 1;
        }
        for subscription in self.subscriptions(subject).await? {
            put("email_subscriptions", None, true, subscription).await?;
            count += 1;
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsr_connector::{Email, Phone};

    #[test]
    fn only_whole_values_are_the_subjects() {
        let subject = Identities {
            emails: vec![Email::parse("kari.nordmann@example.no").unwrap()],
            phones: vec![Phone::parse("91234567", "NO").unwrap()],
            ..Default::default()
        };
        assert!(is_subjects("Kari.Nordmann@Example.no ", &subject));
        assert!(is_subjects("+47 91234567", &subject));
        assert!(!is_subjects("annkari.nordmann@example.no", &subject));
        assert!(!is_subjects("skriv til kari.nordmann@example.no", &subject));
        assert!(submitted_by_subject(
            &json!({"epost": "kari.nordmann@example.no", "navn": "Kari"}),
            &subject
        ));
        assert!(!submitted_by_subject(
            &json!({"epost": "per@x.no", "kopi": "kari.nordmann@example.no"}),
            &subject
        ));
    }
}
