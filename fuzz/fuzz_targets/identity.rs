//! Identity parsing and the matching rule on any text. The input is split at its first
//! newline: the first part is parsed as the subject's address (and phone number, in the region
//! named by the first two characters of the second part), the second is what a vendor wrote.
#![no_main]

use dsr_connector::{Email, Identities, IdentityKind, Phone};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (given, written) = text.split_once('\n').unwrap_or((text, ""));
    let region: String = written.chars().take(2).collect();
    let mut subject = Identities::default();
    if let Ok(email) = Email::parse(given) {
        // An address that parses is held trimmed and lowercased and parses again to itself.
        assert_eq!(email.as_str(), given.trim().to_lowercase());
        assert_eq!(Email::parse(email.as_str()).as_ref(), Ok(&email));
        subject.add_email(email.clone());
        // Any ASCII case of the stored address is hers; a vendor's value that is hers is
        // her address up to case and surrounding whitespace.
        assert!(subject.owns(IdentityKind::Email, &email.as_str().to_ascii_uppercase()));
        if subject.owns(IdentityKind::Email, written) {
            assert_eq!(written.trim().to_lowercase(), email.as_str());
        }
        if let Ok(other) = Email::parse(written)
            && other != email
        {
            assert!(!subject.owns(IdentityKind::Email, other.as_str()));
        }
    }
    if let Ok(phone) = Phone::parse(given, &region) {
        let e164 = phone.as_str();
        assert!(e164.starts_with('+') && e164[1..].bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(Phone::parse(e164, &region).as_ref(), Ok(&phone));
        subject.add_phone(phone.clone());
        assert!(subject.owns(IdentityKind::Phone, e164));
        if let Ok(other) = Phone::parse(written, &region)
            && other != phone
        {
            assert!(!subject.owns(IdentityKind::Phone, other.as_str()));
        }
    }
    for kind in [
        IdentityKind::Email,
        IdentityKind::EmailList,
        IdentityKind::Phone,
        IdentityKind::GaClientId,
        IdentityKind::GaUserId,
    ] {
        let _ = subject.owns(kind, written);
    }
});
