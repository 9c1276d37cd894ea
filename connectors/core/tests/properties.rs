//! Property tests of what core reads from outside: identity parsing and the matching rule,
//! safe file names and the OData literal, on arbitrary input. A bounded number of cases in the
//! normal run (64), more with `PROPTEST_CASES=10000 cargo test -p dsr-connector --test properties`.

use std::time::Duration;

use dsr_connector::http::{BearerAnswer, ODataPage, describe_oauth_error, odata_literal};
use dsr_connector::{Email, Identities, IdentityKind, Phone, safe_file_name};
use proptest::prelude::*;
use serde_json::Value;

#[path = "support/arbitrary.rs"]
mod arbitrary;
use arbitrary::{config, read_odata_literal};

/// Text as a hostile vendor or a careless operator writes it: any Unicode, and the characters
/// that matter to the code under test, often.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ a-zA-Z0-9.@+'\"<>(),;:\\\\/_%-]{0,40}",
        "[\\x00-\\x7f]{0,40}",
        "[.\\\\/ \\x00KkİıſẞÅ]{0,12}",
    ]
}

/// Strings shaped like addresses (most parse), with local parts and domains that stress the
/// parser: quoted parts, dots, plus tags, Unicode.
fn address() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._%+'-]{1,20}@[a-zA-Z0-9-]{1,15}\\.[a-zA-Z]{2,6}",
        "\"[a-zA-Z0-9 .\\\\\"@]{1,12}\"@[a-z]{1,10}\\.[a-z]{2,4}",
        "[a-zæøåKİ]{1,10}@[a-zæøå]{1,10}\\.(no|se|com)",
        " {0,2}[a-zA-Z]{1,10}@[a-zA-Z]{1,10}\\.[a-z]{2,4} {0,2}",
    ]
}

/// `s` with the case of its ASCII letters flipped where `flips` says.
fn recase(s: &str, flips: &[bool]) -> String {
    s.chars()
        .zip(flips.iter().copied().cycle())
        .map(|(c, flip)| match (flip, c.is_ascii_lowercase()) {
            (false, _) => c,
            (true, true) => c.to_ascii_uppercase(),
            (true, false) => c.to_ascii_lowercase(),
        })
        .collect()
}

/// `s` with a backslash before each backslash and each of `specials`, as RFC 5322 writes text
/// inside a quoted string (`"`) or a comment (`(`, `)`).
fn escaped(s: &str, specials: &[char]) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\\' || specials.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn subject_with(email: &Email) -> Identities {
    let mut subject = Identities::default();
    subject.add_email(email.clone());
    subject
}

proptest! {
    #![proptest_config(config())]

    /// Any text: parsing never panics; an address that parses is held trimmed and lowercased,
    /// parses again to itself and survives serde.
    #[test]
    fn an_email_that_parses_round_trips(raw in prop_oneof![text(), address()]) {
        if let Ok(email) = Email::parse(&raw) {
            prop_assert_eq!(email.as_str(), raw.trim().to_lowercase());
            prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
            let json = serde_json::to_string(&email).expect("an address serialises");
            let back: Email = serde_json::from_str(&json).expect("an address deserialises");
            prop_assert_eq!(back, email);
        }
    }

    /// The subject's address matches itself as typed and as stored, in any ASCII case, with
    /// whitespace around it, and inside an address header (a quoted local part included).
    #[test]
    fn owns_ignores_ascii_case(raw in address(), flips in prop::collection::vec(any::<bool>(), 1..8)) {
        let Ok(email) = Email::parse(&raw) else { return Ok(()) };
        let subject = subject_with(&email);
        let written = recase(email.as_str(), &flips);
        let as_given = recase(raw.trim(), &flips);
        prop_assert!(subject.owns(IdentityKind::Email, &as_given));
        prop_assert!(subject.owns(IdentityKind::Email, &written));
        let spaced = format!("  {written}\t");
        prop_assert!(subject.owns(IdentityKind::Email, &spaced));
        for header in [
            format!("Someone <{written}>, other@example.org"),
            format!("\"Nordmann, Kari\" <{as_given}>"),
            format!("other@example.org; {written}"),
            format!("Prosjekt: \"Per (x)\" <per@example.org>, {as_given} (Kari);"),
        ] {
            prop_assert!(subject.owns(IdentityKind::EmailList, &header), "{header:?}");
        }
    }

    /// Whatever a vendor writes, `owns` says yes only to the subject's own address (up to
    /// case and surrounding whitespace), never to another one.
    #[test]
    fn owns_never_matches_another_address(raw in address(), other in prop_oneof![text(), address()]) {
        let Ok(email) = Email::parse(&raw) else { return Ok(()) };
        let subject = subject_with(&email);
        if subject.owns(IdentityKind::Email, &other) {
            prop_assert_eq!(other.trim().to_lowercase(), email.as_str());
        }
        if let Ok(another) = Email::parse(&other)
            && another != email
        {
            prop_assert!(!subject.owns(IdentityKind::Email, another.as_str()));
            prop_assert!(!subject.owns(IdentityKind::Email, &another.as_str().to_ascii_uppercase()));
            // Her address as a display name or in a comment beside another address is not hers.
            let quoted = escaped(email.as_str(), &['"']);
            let commented = escaped(email.as_str(), &['(', ')']);
            for header in [
                format!("X <{}>", another.as_str()),
                format!("\"{quoted}\" <{}>", another.as_str()),
                format!("\"{quoted}, X\" <{}>, Y <{}>", another.as_str(), another.as_str()),
                format!("{} ({commented})", another.as_str()),
            ] {
                prop_assert!(!subject.owns(IdentityKind::EmailList, &header), "{header:?}");
            }
        }
        // Nor a look-alike that only lowercases into her address (the Kelvin sign for `k`).
        let disguised = email.as_str().replace('k', "\u{212a}");
        if disguised != email.as_str() {
            prop_assert!(!subject.owns(IdentityKind::Email, &disguised));
        }
    }

    /// No input panics the address-list reader or the GA id comparisons.
    #[test]
    fn owns_never_panics(raw in address(), value in text()) {
        let mut subject = Identities {
            ga_client_ids: vec!["123.456".into()],
            ga_user_ids: vec!["u-1".into()],
            ..Identities::default()
        };
        if let Ok(email) = Email::parse(&raw) {
            subject.add_email(email);
        }
        if let Ok(phone) = Phone::parse("+47 912 34 567", "NO") {
            subject.add_phone(phone);
        }
        for kind in [IdentityKind::Email, IdentityKind::EmailList, IdentityKind::Phone, IdentityKind::GaClientId, IdentityKind::GaUserId] {
            let _ = subject.owns(kind, &value);
        }
    }

    /// Any text in any region: parsing never panics; a number that parses is E.164, parses
    /// again to itself, and is the subject's however it is spaced, but another number is not.
    #[test]
    fn a_phone_that_parses_round_trips(
        raw in prop_oneof![text(), "\\+?[0-9 ()./-]{0,20}", "(\\+|00)?(47|46|44|1)[0-9 ]{6,12}"],
        region in prop_oneof![Just("NO".to_string()), Just("se".to_string()), Just("US".to_string()), Just("GB".to_string()), "[A-Za-z]{0,3}", text()],
        other in prop_oneof![text(), "\\+?[0-9 ()./-]{0,20}"],
    ) {
        let Ok(phone) = Phone::parse(&raw, &region) else { return Ok(()) };
        let e164 = phone.as_str();
        prop_assert!(e164.starts_with('+') && e164.len() > 1 && e164[1..].bytes().all(|b| b.is_ascii_digit()), "{e164}");
        prop_assert_eq!(Phone::parse(e164, &region), Ok(phone.clone()));
        let mut subject = Identities::default();
        subject.add_phone(phone.clone());
        prop_assert!(subject.owns(IdentityKind::Phone, e164));
        let _ = subject.owns(IdentityKind::Phone, &other);
        if let Ok(another) = Phone::parse(&other, &region)
            && another != phone
        {
            prop_assert!(!subject.owns(IdentityKind::Phone, another.as_str()));
        }
    }

    /// No name leaves its folder: never empty, no separator, no NUL or control character, not
    /// `.` or `..`, at most 101 characters (100 and a `_` before a reserved device name).
    #[test]
    fn a_safe_file_name_stays_in_its_folder(name in prop_oneof![text(), "(\\.\\./|\\.\\.\\\\|/|\\\\|\\.| ){0,6}[a-zA-Z.]{0,8}"]) {
        let safe = safe_file_name(&name);
        prop_assert!(!safe.is_empty());
        prop_assert!(!safe.contains(['/', '\\', '\0']), "{safe:?}");
        prop_assert!(!safe.chars().any(char::is_control), "{safe:?}");
        prop_assert!(safe != "." && safe != "..", "{safe:?}");
        prop_assert!(!safe.starts_with(['.', ' ']), "{safe:?}");
        prop_assert!(safe.chars().count() <= 101, "{safe:?}");
        let path = format!("{}/{}", safe_file_name(&name), safe);
        prop_assert!(path.split('/').all(|part| !part.is_empty() && part != ".."), "{path:?}");
    }

    /// Nothing escapes an OData literal: it reads back, `''` un-doubled, as exactly the value,
    /// ending where the literal ends, with no lone `'`.
    #[test]
    fn an_odata_literal_reads_back_whole(value in prop_oneof![text(), "['a ]{0,12}"], tail in "( and x eq 1|\\)|)") {
        let literal = odata_literal(&value);
        let filter = format!("{literal}{tail}");
        let (read, rest) = read_odata_literal(&filter).expect("the literal closes");
        prop_assert_eq!(read, value);
        prop_assert_eq!(rest, tail);
        let inner = &literal[1..literal.len() - 1];
        prop_assert!(inner.replace("''", "").find('\'').is_none(), "a lone quote in {literal:?}");
    }

    /// The token answer and OData page every connector reads, and the OAuth error reader,
    /// take any JSON or bytes without a panic; a token's lifetime never overflows.
    #[test]
    fn token_answers_pages_and_oauth_errors_never_panic(
        value in json(),
        body in prop::collection::vec(any::<u8>(), 0..200),
        status in 100u16..1000,
        lifetime in any::<u64>(),
    ) {
        if let Ok(answer) = dsr_connector::decode::<BearerAnswer>(value.clone()) {
            let _ = answer.into_token(Duration::from_secs(lifetime));
        }
        let _ = dsr_connector::decode::<ODataPage<Value>>(value.clone());
        let status = reqwest::StatusCode::from_u16(status).expect("100..1000 is a status code");
        let _ = describe_oauth_error(status, &body);
        let _ = describe_oauth_error(status, value.to_string().as_bytes());
    }
}

/// Any JSON value, objects keyed mostly with the fields of a token answer and an OData page.
fn json() -> BoxedStrategy<Value> {
    arbitrary::json(&[
        "access_token",
        "expires_in",
        "token_type",
        "error",
        "error_description",
        "value",
        "@odata.nextLink",
        "odata.nextLink",
    ])
}
