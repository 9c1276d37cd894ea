//! Every vendor's wire types and error-body readers on any input: the bytes as an error body
//! (with a status from the first two bytes), and, when they are JSON, as each wire type.
//! Nothing may panic.
#![no_main]

use dsr_connector::decode;
use dsr_connector::http::{BearerAnswer, ODataPage, describe_oauth_error};
use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

macro_rules! decode_each {
    ($value:expr; $($t:ty),+ $(,)?) => {
        $( let _ = decode::<$t>($value.clone()); )+
    };
}

fuzz_target!(|data: &[u8]| {
    let code = match data {
        [a, b, ..] => 100 + u16::from_le_bytes([*a, *b]) % 900,
        _ => 500,
    };
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = data.get(2..).unwrap_or_default();
    let _ = dsr_google::client::describe_error(status, body);
    let _ = dsr_microsoft365::client::describe_error(status, body);
    let _ = dsr_superoffice::client::describe_error(status, body);
    let _ = dsr_wix::client::describe_error(status, body);
    let _ = describe_oauth_error(status, body);
    let _ = dsr_google::gmail::header_addresses(data);

    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    decode_each!(value; BearerAnswer, ODataPage<Value>);
    {
        use dsr_google::wire::*;
        decode_each!(value;
            ErrorBody, MessageList, MessageRef, RawMessage, Message, MessagePart, Header, ConnectionList,
            OtherContactList, SearchResponse, SearchResult, Person, Name, EmailAddress, PhoneNumber, Organization,
            Address, JobReference, TableSchema, TableFieldSchema, TableRow, TableCell, UserDeletionRequest,
            UserDeletionId, SubmitUserDeletionResponse, Property,
        );
        if let Ok(response) = decode::<QueryResponse>(value.clone()) {
            let fields = response.schema.map(|s| s.fields).unwrap_or_default();
            for row in response.rows {
                let _ = dsr_google::access::decode_row(row, &fields, "rows");
            }
        }
    }
    {
        use dsr_microsoft365::wire::*;
        decode_each!(value; User, EmailAddress, Recipient, Contact, ContactFolder, MailFolder);
        if let Ok(message) = decode::<Message>(value.clone()) {
            let _ = message.address_pointers();
        }
        if let Ok(attachment) = decode::<Attachment>(value.clone()) {
            let _ = attachment.is_file();
        }
    }
    {
        use dsr_superoffice::wire::*;
        decode_each!(value; EntityElement, ShipmentType, AuthenticateAnswer, ErrorBody, PersonEntity);
        if let Ok(state) = decode::<TenantState>(value.clone()) {
            let _ = state.running();
        }
        if let Ok(page) = decode::<ODataPage<ArchiveRow>>(value.clone()) {
            for row in page.value {
                let _ = (row.id(), row.number("personId"), row.flag("retired"));
            }
        }
        if let Ok(consent) = decode::<ConsentInfo>(value.clone()) {
            let _ = consent.in_force();
        }
    }
    {
        use dsr_wix::wire::*;
        decode_each!(value;
            Items<Value>, ContactEmail, ContactPhone, ContactInfo, Contact, OffsetPaging, ContactsPage, ContactAnswer,
            Member, MembersPage, Cursors, Submitter, Submission, SubmissionsPage, CommentsPage, SubscriptionsPage,
            SubscriptionAnswer,
        );
        if let Ok(paging) = decode::<CursorPaging>(value.clone()) {
            let _ = paging.next();
        }
        if let Ok(comment) = decode::<Comment>(value) {
            let _ = comment.deleted();
        }
    }
});
