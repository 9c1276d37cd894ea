//! Property tests of what the Wix connector reads from Wix: every wire type and the error-body
//! reader, fed arbitrary JSON and bytes, never panic. A bounded number of cases in the
//! normal run (64), more with `PROPTEST_CASES=10000 cargo test -p dsr-wix --test properties`.

use dsr_wix::client::describe_error;
use dsr_wix::wire::*;
use proptest::prelude::*;
use serde_json::Value;

#[macro_use]
#[path = "../../core/tests/support/arbitrary.rs"]
mod arbitrary;
use arbitrary::*;

const KEYS: &[&str] = &[
    "comments",
    "contact",
    "contactId",
    "contacts",
    "cursors",
    "e164Phone",
    "email",
    "emails",
    "hasNext",
    "id",
    "info",
    "items",
    "memberId",
    "members",
    "metadata",
    "next",
    "pagingMetadata",
    "phone",
    "phones",
    "revision",
    "status",
    "submissions",
    "submitter",
    "subscription",
    "subscriptions",
    "total",
    "count",
    "offset",
    "tooManyToCount",
    "message",
    "details",
    "applicationError",
    "validationError",
    "fieldViolations",
    "field",
    "description",
    "ruleName",
    "code",
    "error",
    "error_description",
    "access_token",
    "expires_in",
    "name",
    "first",
    "last",
    "submissionId",
    "submissions",
    "subscriptionStatus",
    "deliverabilityStatus",
    "primaryInfo",
    "loginEmail",
    "createdDate",
];

proptest! {
    #![proptest_config(config())]

    /// Every wire type reads any JSON as a value or a decode error, never a panic; what dsr
    /// then asks of a decoded value does not panic either.
    #[test]
    fn the_wire_types_never_panic_on_any_json(value in json(KEYS)) {
        decode_each!(value;
            Items<Value>, ContactEmail, ContactPhone, ContactInfo, Contact, OffsetPaging, ContactAnswer,
            Member, Cursors, Submitter, Submission, SubscriptionAnswer, TokenAnswer,
        );
        if let Ok(page) = dsr_connector::decode::<ContactsPage>(value.clone()) {
            for contact in page.contacts {
                decode_each!(contact; Contact);
            }
        }
        if let Ok(page) = dsr_connector::decode::<MembersPage>(value.clone()) {
            for member in page.members {
                decode_each!(member; Member);
            }
        }
        if let Ok(page) = dsr_connector::decode::<SubmissionsPage>(value.clone()) {
            let _ = page.metadata.next();
            for submission in page.submissions {
                decode_each!(submission; Submission);
            }
        }
        if let Ok(page) = dsr_connector::decode::<CommentsPage>(value.clone()) {
            let _ = page.paging_metadata.next();
            for comment in page.comments {
                if let Ok(comment) = dsr_connector::decode::<Comment>(comment) {
                    let _ = comment.deleted();
                }
            }
        }
        if let Ok(page) = dsr_connector::decode::<SubscriptionsPage>(value.clone()) {
            for subscription in page.subscriptions {
                decode_each!(subscription; SubscriptionAnswer);
            }
        }
        if let Ok(paging) = dsr_connector::decode::<CursorPaging>(value.clone()) {
            let _ = paging.next();
        }
        if let Ok(comment) = dsr_connector::decode::<Comment>(value) {
            let _ = comment.deleted();
        }
    }

    /// The error-body reader takes any status and any bytes, JSON or not, cut off or whole.
    #[test]
    fn the_error_reader_never_panics(status in status(), body in body(KEYS)) {
        let _ = describe_error(status, &body);
    }
}
