//! Finding what the website holds about the subject (Art. 15): contacts, the member account,
//! form submissions that name her address or phone as a whole value, her comments as a
//! member, and her e-mail marketing status.

use std::collections::BTreeSet;

use dsr_connector::http::PageGuard;
use dsr_connector::{ConnectorError, Identities, IdentityKind, MatchClaim, Record, RecordSink};
use futures::future::{try_join, try_join_all};
use serde_json::{Value, json};

use crate::Wix;
use crate::client::PROCESSOR;
use crate::wire::{
    Comment, CommentsPage, Contact, ContactsPage, Member, MembersPage, Submission, SubmissionsPage, SubscriptionsPage,
};

const PAGE: u64 = 100;

/// A guard against a listing that does not end: 10,000 pages of 100 (a namespace's
/// submissions are all read, so a busy site's can be many).
const MAX_PAGES: usize = 10_000;

/// Whether the subject submitted the form herself: every address in it is hers, or it holds
/// no address and Wix records her contact or member as its sender.
pub fn submitted_by_subject(
    submission: &Found<Submission>,
    subject: &Identities,
    contact_ids: &[String],
    member_ids: &[String],
) -> bool {
    let addresses: Vec<&str> = submission
        .view
        .submissions
        .values()
        .filter_map(|v| v.as_str())
        .filter(|v| v.contains('@') && !v.contains(' '))
        .collect();
    if addresses.is_empty() {
        let by_contact = submission
            .view
            .contact_id
            .as_ref()
            .is_some_and(|c| contact_ids.contains(c));
        let by_member = submission
            .view
            .submitter
            .member_id
            .as_ref()
            .is_some_and(|m| member_ids.contains(m));
        return by_contact || by_member;
    }
    addresses.iter().all(|a| subject.owns(IdentityKind::Email, a))
}

/// A record as Wix holds it (kept whole for the bundle) and the fields dsr reads from it.
#[derive(Debug, Clone)]
pub struct Found<T> {
    pub raw: Value,
    pub view: T,
}

fn found<T: serde::de::DeserializeOwned>(raw: Value, endpoint: &str) -> Result<Found<T>, ConnectorError> {
    let view = dsr_connector::decode_answer(PROCESSOR, endpoint, raw.clone())?;
    Ok(Found { raw, view })
}

impl Holdings {
    /// Her contacts' and members' ids: a form Wix records as sent by one of them is hers.
    pub fn sender_ids(&self) -> (Vec<String>, Vec<String>) {
        let mut contacts: Vec<String> = self.contacts.iter().map(|c| c.view.id.clone()).collect();
        contacts.extend(self.members.iter().filter_map(|m| m.view.contact_id.clone()));
        let members = self.members.iter().map(|m| m.view.id.clone()).collect();
        (contacts, members)
    }
}

/// Where a contact holds addresses and phone numbers: (e-mail pointers, phone pointers).
fn contact_pointers(contact: &Found<Contact>) -> (Vec<String>, Vec<String>) {
    let info = &contact.view.info;
    let emails: Vec<String> = (0..info.emails.items.len())
        .map(|i| format!("/info/emails/items/{i}/email"))
        .collect();
    let phones: Vec<String> = (0..info.phones.items.len())
        .flat_map(|i| {
            [
                format!("/info/phones/items/{i}/e164Phone"),
                format!("/info/phones/items/{i}/phone"),
            ]
        })
        .collect();
    (emails, phones)
}

/// Where a contact holds one of the subject's addresses or phone numbers (the core's rule).
pub fn contact_claims(contact: &Found<Contact>, subject: &Identities) -> Vec<MatchClaim> {
    let (emails, phones) = contact_pointers(contact);
    [
        subject.claims_at(&contact.raw, IdentityKind::Email, &emails),
        subject.claims_at(&contact.raw, IdentityKind::Phone, &phones),
    ]
    .concat()
}

/// What a contact the search returned claims: where it is hers, or, for one that is not,
/// every address and number it holds (where the search should have matched), which the
/// engine then finds are not hers.
pub fn contact_claims_or_candidates(contact: &Found<Contact>, subject: &Identities) -> Vec<MatchClaim> {
    let claims = contact_claims(contact, subject);
    if !claims.is_empty() {
        return claims;
    }
    let (emails, phones) = contact_pointers(contact);
    emails
        .into_iter()
        .map(MatchClaim::email)
        .chain(phones.into_iter().map(MatchClaim::phone))
        .collect()
}

/// Where a member's login e-mail sits: the one place a member is the subject's.
const MEMBER_CLAIM: &str = "/loginEmail";

/// A member is the subject's where its login e-mail is hers.
pub fn member_claims(member: &Found<Member>, subject: &Identities) -> Vec<MatchClaim> {
    subject.claims_at(&member.raw, IdentityKind::Email, &[MEMBER_CLAIM.into()])
}

/// A submission is the subject's where one of its values is, as a whole, her address or
/// phone (field values cannot be filtered by Wix; a contact id alone is not an identifier).
pub fn submission_claims(submission: &Found<Submission>, subject: &Identities) -> Vec<MatchClaim> {
    subject
        .claims_anywhere(&submission.raw["submissions"])
        .into_iter()
        .map(|c| MatchClaim::new(c.identity, format!("/submissions{}", c.at)))
        .collect()
}

/// Comments carry no e-mail: one found under the subject's member says so in `found_via`
/// (the member and its login e-mail), which is what its claim points at.
pub const COMMENT_CLAIM: &str = "/found_via/loginEmail";

/// What the website holds about the subject, found once and used by access and erasure.
pub struct Holdings {
    pub contacts: Vec<Found<Contact>>,
    pub members: Vec<Found<Member>>,
    pub submissions: Vec<Found<Submission>>,
    pub comments: Vec<Found<Comment>>,
    /// What the searches returned that is not the subject's, shown to the engine with what
    /// it claims, which the engine refuses.
    pub others: Vec<Other>,
}

/// A record a search returned that is not the subject's (a filter Wix ignored).
#[derive(Debug, Clone)]
pub struct Other {
    /// `contacts`, `members` or `comments`.
    pub category: &'static str,
    pub id: String,
    pub raw: Value,
    /// Where the record would hold her identifier had the search been right.
    pub claims: Vec<MatchClaim>,
}

impl Wix {
    /// Contacts with one of the subject's addresses or phones, each once; offset paging up to
    /// the reported total (a short page is not the end).
    pub async fn find_contacts(&self, subject: &Identities) -> Result<Vec<Found<Contact>>, ConnectorError> {
        const ENDPOINT: &str = "/contacts/v4/contacts/query";
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
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
        // Each filter's pages follow one another; the filters are searched together, and
        // their answers taken in the filters' order.
        let searches = filters.map(|filter| async move {
            let mut matched = Vec::new();
            let mut offset = 0;
            let mut pages = PageGuard::new(PROCESSOR, ENDPOINT, MAX_PAGES);
            loop {
                let body = json!({"query": {"filter": filter, "paging": {"limit": PAGE, "offset": offset}}});
                let page: ContactsPage = self.api.post(ENDPOINT, &body).await?;
                let count = page.contacts.len() as u64;
                offset += count;
                for raw in page.contacts {
                    matched.push(found::<Contact>(raw, ENDPOINT)?);
                }
                // Offset paging up to the reported total; with no total (too many to count),
                // until a short page.
                let done = match page.paging_metadata.total {
                    Some(total) => offset >= total,
                    None => count < PAGE,
                };
                // An empty page ends it too: the offset would not move. The guard caps it.
                let next = (count > 0 && !done).then(|| offset.to_string());
                if pages.next(count as usize, next)?.is_none() {
                    return Ok::<_, ConnectorError>(matched);
                }
            }
        });
        for contact in try_join_all(searches).await?.into_iter().flatten() {
            if seen.insert(contact.view.id.clone()) {
                out.push(contact);
            }
        }
        Ok(out)
    }

    /// Members whose login e-mail is one of the subject's (the FULL fieldset: the default
    /// PUBLIC one carries neither the e-mail nor the contact id).
    pub async fn find_members(&self, subject: &Identities) -> Result<Vec<Found<Member>>, ConnectorError> {
        const ENDPOINT: &str = "/members/v1/members/query";
        let mut out: Vec<Found<Member>> = Vec::new();
        let queries = subject.emails.iter().map(|email| async move {
            let body = json!({"fieldsets": ["FULL"], "query": {"filter": {"loginEmail": {"$eq": email.as_str()}}}});
            self.api.post::<MembersPage>(ENDPOINT, &body).await
        });
        for page in try_join_all(queries).await? {
            for raw in page.members {
                let member: Found<Member> = found(raw, ENDPOINT)?;
                if !out.iter().any(|m| m.view.id == member.view.id) {
                    out.push(member);
                }
            }
        }
        Ok(out)
    }

    /// Every page of one submissions query (cursor paging: later pages send only the cursor).
    /// Only the submissions `keep` accepts are kept, page by page: a namespace is read whole but
    /// never held whole.
    async fn query_submissions(
        &self,
        filter: Value,
        keep: impl Fn(&Found<Submission>) -> bool,
    ) -> Result<Vec<Found<Submission>>, ConnectorError> {
        const ENDPOINT: &str = "/form-submission-service/v4/submissions/namespace/query";
        let mut out = Vec::new();
        let mut body = json!({"query": {"filter": filter, "cursorPaging": {"limit": PAGE}}});
        let mut pages = PageGuard::new(PROCESSOR, ENDPOINT, MAX_PAGES);
        loop {
            let page: SubmissionsPage = self.api.post(ENDPOINT, &body).await?;
            let next = pages.next(page.submissions.len(), page.metadata.next())?;
            for raw in page.submissions {
                let submission = found(raw, ENDPOINT)?;
                if keep(&submission) {
                    out.push(submission);
                }
            }
            match next {
                Some(cursor) => body = json!({"query": {"cursorPaging": {"limit": PAGE, "cursor": cursor}}}),
                None => return Ok(out),
            }
        }
    }

    /// Submissions in every configured namespace that the subject's contact or member sent
    /// (filtered by Wix), or that hold her address or phone as a whole field value (field
    /// values cannot be filtered, so each namespace is read and matched here).
    pub async fn find_submissions(
        &self,
        subject: &Identities,
        contact_ids: &[String],
        member_ids: &[String],
    ) -> Result<Vec<Found<Submission>>, ConnectorError> {
        let mut filters = Vec::new();
        for namespace in &self.config.form_namespaces {
            let ns = json!({"$eq": namespace});
            filters.push(json!({"namespace": ns}));
            if !contact_ids.is_empty() {
                filters.push(json!({"namespace": ns, "contactId": {"$in": contact_ids}}));
            }
            if !member_ids.is_empty() {
                filters.push(json!({"namespace": ns, "submitter.memberId": {"$in": member_ids}}));
            }
        }
        // The queries run together, each keeping only what names her; their answers are taken
        // in the order above.
        let names_her = |submission: &Found<Submission>| !submission_claims(submission, subject).is_empty();
        let queries = filters
            .into_iter()
            .map(|filter| self.query_submissions(filter, names_her));
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for submission in try_join_all(queries).await?.into_iter().flatten() {
            if seen.insert(submission.view.id.clone()) {
                out.push(submission);
            }
        }
        Ok(out)
    }

    /// The comments the subject's members wrote, in every configured commenting app; comments
    /// already deleted (status `DELETED`, content gone) are left out. Comments the author
    /// filter returned that another member wrote come back second, without `found_via`.
    pub async fn find_comments(
        &self,
        members: &[Found<Member>],
    ) -> Result<(Vec<Found<Comment>>, Vec<Found<Comment>>), ConnectorError> {
        const ENDPOINT: &str = "/comments/v1/comments/query-cursor";
        // One query per app and member, all at once; each one's pages follow one another.
        let pairs = self
            .config
            .comment_app_ids
            .iter()
            .flat_map(|app| members.iter().map(move |member| (app, member)));
        let queries = pairs.map(|(app, found_member)| async move {
            let member = &found_member.view.id;
            let mut comments = Vec::new();
            let mut body = json!({"appId": app, "query": {"filter": {"author.memberId": {"$eq": member}}, "cursorPaging": {"limit": PAGE}}});
            let mut pages = PageGuard::new(PROCESSOR, ENDPOINT, MAX_PAGES);
            loop {
                let page: CommentsPage = self.api.post(ENDPOINT, &body).await?;
                let next = pages.next(page.comments.len(), page.paging_metadata.next())?;
                for raw in page.comments {
                    let comment: Found<Comment> = found(raw, ENDPOINT)?;
                    if !comment.view.deleted() {
                        comments.push(comment);
                    }
                }
                match next {
                    Some(cursor) => {
                        body = json!({"appId": app, "query": {"cursorPaging": {"limit": PAGE, "cursor": cursor}}})
                    }
                    None => return Ok::<_, ConnectorError>((found_member, comments)),
                }
            }
        });
        let mut out = Vec::new();
        let mut not_hers: Vec<Found<Comment>> = Vec::new();
        for (found_member, comments) in try_join_all(queries).await? {
            let member = &found_member.view.id;
            let via = json!({"member": member, "loginEmail": found_member.raw["loginEmail"]});
            for mut comment in comments {
                // The author filter may be ignored: only her member's comments count.
                if comment.raw["author"]["memberId"].as_str() == Some(member.as_str()) {
                    comment.raw["found_via"] = via.clone();
                    out.push(comment);
                } else if !not_hers.iter().any(|c| c.view.id == comment.view.id) {
                    not_hers.push(comment);
                }
            }
        }
        not_hers.retain(|c| !out.iter().any(|mine| mine.view.id == c.view.id));
        Ok((out, not_hers))
    }

    pub async fn subscriptions(&self, subject: &Identities) -> Result<Vec<Value>, ConnectorError> {
        if subject.emails.is_empty() {
            return Ok(vec![]);
        }
        let emails: Vec<&str> = subject.emails.iter().map(|e| e.as_str()).collect();
        let body = json!({"filter": {"email": {"$in": emails}}});
        let page: SubscriptionsPage = self
            .api
            .post("/email-marketing/v1/email-subscriptions/query", &body)
            .await?;
        Ok(page.subscriptions)
    }

    /// One small query at each API access and erasure use, for `dsr doctor`.
    pub async fn probe(&self) -> Result<(), ConnectorError> {
        self.find_contacts(&Identities::probe()).await?;
        for namespace in &self.config.form_namespaces {
            let body = json!({"query": {"filter": {"namespace": {"$eq": namespace}}, "cursorPaging": {"limit": 1}}});
            let _: SubmissionsPage = self
                .api
                .post("/form-submission-service/v4/submissions/namespace/query", &body)
                .await?;
        }
        for app in &self.config.comment_app_ids {
            let body = json!({"appId": app, "query": {"filter": {"author.memberId": {"$eq": "dsr-probe"}}, "cursorPaging": {"limit": 1}}});
            let _: CommentsPage = self.api.post("/comments/v1/comments/query-cursor", &body).await?;
        }
        Ok(())
    }

    /// Contacts, members, submissions and comments, in the order each depends on the last.
    pub async fn holdings(&self, subject: &Identities) -> Result<Holdings, ConnectorError> {
        // What the searches returned that is not the subject's is set apart here and shown
        // to the engine with its claims; the engine checks every record and change again.
        let mut others = Vec::new();
        // Contacts and members do not depend on each other: searched together.
        let (contacts, members) = try_join(self.find_contacts(subject), self.find_members(subject)).await?;
        let (contacts, not_hers): (Vec<_>, Vec<_>) = contacts
            .into_iter()
            .partition(|c| !contact_claims(c, subject).is_empty());
        others.extend(not_hers.into_iter().map(|c| Other {
            category: "contacts",
            claims: contact_claims_or_candidates(&c, subject),
            id: c.view.id,
            raw: c.raw,
        }));
        let (members, not_hers): (Vec<_>, Vec<_>) =
            members.into_iter().partition(|m| !member_claims(m, subject).is_empty());
        others.extend(not_hers.into_iter().map(|m| Other {
            category: "members",
            id: m.view.id,
            raw: m.raw,
            claims: vec![MatchClaim::email(MEMBER_CLAIM)],
        }));
        let member_ids: Vec<String> = members.iter().map(|m| m.view.id.clone()).collect();
        let mut contact_ids: Vec<String> = contacts.iter().map(|c| c.view.id.clone()).collect();
        for m in &members {
            if let Some(id) = m.view.contact_id.clone().filter(|id| !contact_ids.contains(id)) {
                contact_ids.push(id);
            }
        }
        // Submissions and comments both need her contacts and members, not each other.
        let (submissions, (comments, not_hers)) = try_join(
            self.find_submissions(subject, &contact_ids, &member_ids),
            self.find_comments(&members),
        )
        .await?;
        others.extend(not_hers.into_iter().map(|c| Other {
            category: "comments",
            id: c.view.id,
            raw: c.raw,
            claims: vec![MatchClaim::email(COMMENT_CLAIM)],
        }));
        Ok(Holdings {
            contacts,
            members,
            submissions,
            comments,
            others,
        })
    }

    pub async fn export(&self, subject: &Identities, sink: &mut dyn RecordSink) -> Result<u64, ConnectorError> {
        let mut count = 0;
        let mut put = async |category: &str,
                             id: Option<String>,
                             provided: bool,
                             data: Value,
                             claims: Vec<MatchClaim>|
               -> Result<(), ConnectorError> {
            sink.accept(Record {
                category: category.into(),
                id,
                provided_by_subject: provided,
                data,
                claims,
            })
            .await?;
            Ok(())
        };
        // The marketing status needs nothing else found: asked beside the rest.
        let (held, subscriptions) = try_join(self.holdings(subject), self.subscriptions(subject)).await?;
        let (contact_ids, member_ids) = held.sender_ids();
        for other in held.others {
            put(other.category, Some(other.id), false, other.raw, other.claims).await?;
        }
        for c in held.contacts {
            let claims = contact_claims(&c, subject);
            put("contacts", Some(c.view.id), true, c.raw, claims).await?;
            count += 1;
        }
        for m in held.members {
            let claims = member_claims(&m, subject);
            put("members", Some(m.view.id), true, m.raw, claims).await?;
            count += 1;
        }
        for s in held.submissions {
            let own = submitted_by_subject(&s, subject, &contact_ids, &member_ids);
            let claims = submission_claims(&s, subject);
            put("form_submissions", Some(s.view.id), own, s.raw, claims).await?;
            count += 1;
        }
        for c in held.comments {
            put(
                "comments",
                Some(c.view.id),
                true,
                c.raw,
                vec![MatchClaim::email(COMMENT_CLAIM)],
            )
            .await?;
            count += 1;
        }
        for subscription in subscriptions {
            let claims = subject.claims_at(&subscription, IdentityKind::Email, &["/email".into()]);
            put("email_subscriptions", None, true, subscription, claims).await?;
            count += 1;
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsr_fixtures::testing::subject;

    #[test]
    fn the_subjects_own_submissions_are_those_she_gave_every_address_in() {
        let phones = vec![dsr_connector::Phone::parse("91234567", "NO").unwrap()];
        let subject = Identities {
            phones,
            ..subject("kari.nordmann@example.no")
        };
        let form = |v: Value| found::<Submission>(v, "test").unwrap();
        let mine = |v: Value| submitted_by_subject(&form(v), &subject, &["ct-kari".into()], &["mb-kari".into()]);
        assert!(mine(
            json!({"id": "1", "submissions": {"epost": "kari.nordmann@example.no", "navn": "Kari"}})
        ));
        assert!(!mine(
            json!({"id": "2", "submissions": {"epost": "per@x.no", "kopi": "kari.nordmann@example.no"}})
        ));
        assert!(
            mine(json!({"id": "3", "contactId": "ct-kari", "submissions": {"navn": "Kari", "tlf": "912 34 567"}})),
            "a form with no address that Wix records as sent by her contact"
        );
        assert!(!mine(
            json!({"id": "4", "contactId": "ct-per", "submissions": {"navn": "Per", "tlf": "912 34 567"}})
        ));
        let raw =
            json!({"id": "s", "submissions": {"melding": "skriv til kari.nordmann@example.no", "tlf": "+47 91234567"}});
        let submission = found::<Submission>(raw, "test").unwrap();
        assert_eq!(
            submission_claims(&submission, &subject),
            [MatchClaim::phone("/submissions/tlf")]
        );
    }
}
