//! The one rule for "is this the subject's": a value is one of the subject's identifiers
//! (`Identities::owns`), and every record or item a connector exports or changes says where
//! in it that value sits (`MatchClaim`). The engine checks each claim against the record
//! itself (`check_claims`) before a record reaches the spool and before an item is changed,
//! so a vendor that ignores its search filter cannot put anyone else's data in a bundle or
//! under a delete.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Identities;

/// Which of the subject's identifiers a value is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// An e-mail address: whole addresses, case-insensitively (no dot or plus folding).
    Email,
    /// An e-mail header's address list (`Kari <kari@example.no>, per@example.no`): one of its
    /// addresses, each compared whole.
    EmailList,
    /// A phone number, compared in E.164 however the vendor writes it.
    Phone,
    /// A Google Analytics client id, exactly.
    GaClientId,
    /// A Google Analytics user id, exactly.
    GaUserId,
}

/// Why a record is the subject's: the identifier that matched, and where in the record's
/// data the value sits (a JSON pointer, RFC 6901: `/toRecipients/0/emailAddress/address`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchClaim {
    pub identity: IdentityKind,
    pub at: String,
}

impl MatchClaim {
    pub fn new(identity: IdentityKind, at: impl Into<String>) -> MatchClaim {
        MatchClaim {
            identity,
            at: at.into(),
        }
    }

    pub fn email(at: impl Into<String>) -> MatchClaim {
        MatchClaim::new(IdentityKind::Email, at)
    }

    pub fn phone(at: impl Into<String>) -> MatchClaim {
        MatchClaim::new(IdentityKind::Phone, at)
    }
}

/// Why a record or item is not the subject's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("it claims no match with the subject's identifiers")]
    NoClaim,
    #[error("nothing is at {0}, where it claims the subject's identifier")]
    Missing(String),
    #[error("the value at {0} is not one of the subject's identifiers")]
    NotHers(String),
}

impl Identities {
    /// Whether `value` is one of the subject's identifiers of `kind`.
    pub fn owns(&self, kind: IdentityKind, value: &str) -> bool {
        match kind {
            IdentityKind::Email => self.owns_email(value),
            IdentityKind::EmailList => address_tokens(value).iter().any(|a| self.owns_email(a)),
            IdentityKind::Phone => self.owns_phone(value),
            IdentityKind::GaClientId => self.ga_client_ids.iter().any(|id| id == value.trim()),
            IdentityKind::GaUserId => self.ga_user_ids.iter().any(|id| id == value.trim()),
        }
    }

    /// Claims for every place in `data` (at the pointers given) that holds one of the
    /// subject's identifiers of `kind`: what a connector attaches to a record it found.
    pub fn claims_at(&self, data: &Value, kind: IdentityKind, pointers: &[String]) -> Vec<MatchClaim> {
        pointers
            .iter()
            .filter(|at| {
                data.pointer(at)
                    .and_then(Value::as_str)
                    .is_some_and(|v| self.owns(kind, v))
            })
            .map(|at| MatchClaim::new(kind, at.clone()))
            .collect()
    }

    /// Claims for every string in `data` that is, as a whole, one of the subject's e-mail
    /// addresses or phone numbers, wherever it sits (a form's free fields).
    pub fn claims_anywhere(&self, data: &Value) -> Vec<MatchClaim> {
        let mut claims = Vec::new();
        walk(data, String::new(), &mut |at, value| {
            if self.owns(IdentityKind::Email, value) {
                claims.push(MatchClaim::email(at));
            } else if self.owns(IdentityKind::Phone, value) {
                claims.push(MatchClaim::phone(at));
            }
        });
        claims
    }
}

fn walk(value: &Value, at: String, each: &mut impl FnMut(String, &str)) {
    match value {
        Value::String(s) => each(at, s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, format!("{at}/{i}"), each);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                let key = key.replace('~', "~0").replace('/', "~1");
                walk(item, format!("{at}/{key}"), each);
            }
        }
        _ => {}
    }
}

/// The addresses in a header value (`"Nordmann, Kari" <kari@example.no>, per@x.no`): each
/// mailbox is its `<…>` part when it has one, else its bare address. A quoted string is read
/// as RFC 5322 does: one glued to address text (`"k.n"@example.no`) is part of the address and
/// kept as written; one standing alone is a display name and left out (a name may look like
/// an address), its commas splitting nothing. Comments are left out.
fn address_tokens(value: &str) -> Vec<String> {
    let pieces = header_pieces(value);
    pieces
        .split(|p| matches!(p, Piece::Char(',' | ';')))
        .map(|mailbox| {
            // A group (`Prosjekt: a@x.no, b@y.no;`): its name is not part of the first address.
            match mailbox.iter().position(|p| *p == Piece::Char(':')) {
                Some(i) if !mailbox[..i].iter().any(|p| matches!(p, Piece::Char('<' | '@'))) => &mailbox[i + 1..],
                _ => mailbox,
            }
        })
        .filter_map(|mailbox| {
            let open = mailbox.iter().position(|p| *p == Piece::Char('<'));
            let close = mailbox.iter().rposition(|p| *p == Piece::Char('>'));
            match (open, close) {
                (Some(open), Some(close)) if open < close => address(&mailbox[open + 1..close]),
                (None, None) => address(mailbox),
                _ => None,
            }
        })
        .collect()
}

/// A header value as the address-list reader sees it, comments and display names gone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// A character outside quotes: address text or structure (`<`, `,`, `:`).
    Char(char),
    /// A quoted string that is part of an address, as written: its quotes and backslash
    /// escapes kept, as the subject's address holds them.
    Quoted(String),
    /// A quoted string that never closes, and so takes the rest of the value: no address.
    Unclosed,
}

/// Whether `c`, next to a quoted string, leaves it standing alone (a display name or a word of
/// one) rather than glued to address text. Anything else glues, a comment's `(` included, so
/// that leaving a quoted string out never joins the text on either side of it into an address.
fn stands_apart(c: char) -> bool {
    c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';' | ':')
}

/// Reads `value` once, left to right: comments dropped (nested, with backslash escapes), each
/// quoted string read to its closing quote (a backslash escapes the next character) and kept
/// when glued to address text, dropped when it stands apart.
fn header_pieces(value: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut chars = value.chars().peekable();
    let (mut comment, mut escaped) = (0usize, false);
    while let Some(c) = chars.next() {
        if comment > 0 {
            // In a comment a `"` is text and `\` escapes the next character.
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '(' => comment += 1,
                ')' => comment -= 1,
                _ => {}
            }
            continue;
        }
        match c {
            '(' => comment = 1,
            '"' => {
                let glued_before = match pieces.last() {
                    None => false,
                    Some(Piece::Char(before)) => !stands_apart(*before),
                    Some(_) => true,
                };
                let mut quoted = String::from('"');
                let mut closed = false;
                for q in chars.by_ref() {
                    quoted.push(q);
                    match q {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        '"' => {
                            closed = true;
                            break;
                        }
                        _ => {}
                    }
                }
                let glued_after = chars.peek().is_some_and(|after| !stands_apart(*after));
                if !closed {
                    pieces.push(Piece::Unclosed);
                } else if glued_before || glued_after {
                    pieces.push(Piece::Quoted(quoted));
                }
            }
            c => pieces.push(Piece::Char(c)),
        }
    }
    pieces
}

/// The address a mailbox's pieces spell, when they spell one: whitespace around it only, an
/// `@` outside quotes, and no unclosed quote.
fn address(pieces: &[Piece]) -> Option<String> {
    let space = |p: &Piece| matches!(p, Piece::Char(c) if c.is_whitespace());
    let first = pieces.iter().position(|p| !space(p))?;
    let last = pieces.iter().rposition(|p| !space(p))?;
    let pieces = &pieces[first..=last];
    let mut at = false;
    let mut text = String::new();
    for piece in pieces {
        match piece {
            Piece::Char(c) if c.is_whitespace() => return None,
            Piece::Char(c) => {
                at |= *c == '@';
                text.push(*c);
            }
            Piece::Quoted(quoted) => text.push_str(quoted),
            Piece::Unclosed => return None,
        }
    }
    at.then_some(text)
}

/// The engine's check: the first claim whose value in `data` is one of the subject's
/// identifiers, or why there is none.
pub fn check_claims<'a>(
    subject: &Identities,
    data: &Value,
    claims: &'a [MatchClaim],
) -> Result<&'a MatchClaim, Refusal> {
    let mut refusal = Refusal::NoClaim;
    for claim in claims {
        match data.pointer(&claim.at).and_then(Value::as_str) {
            Some(value) if subject.owns(claim.identity, value) => return Ok(claim),
            Some(_) => refusal = Refusal::NotHers(claim.at.clone()),
            None => refusal = Refusal::Missing(claim.at.clone()),
        }
    }
    Err(refusal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Email, Phone};
    use serde_json::json;

    fn kari() -> Identities {
        Identities {
            emails: vec![Email::parse("kari.nordmann@example.no").unwrap()],
            phones: vec![Phone::parse("912 34 567", "NO").unwrap()],
            ga_client_ids: vec!["1234567890.1700000000".into()],
            ..Default::default()
        }
    }

    #[test]
    fn owns_compares_whole_values() {
        let k = kari();
        assert!(k.owns(IdentityKind::Email, "Kari.Nordmann@EXAMPLE.no"));
        assert!(k.owns(IdentityKind::Email, "  kari.nordmann@example.no "));
        for other in [
            "annkari.nordmann@example.no",
            "kari.nordman@example.no",
            "kari.nordmann+news@example.no",
            "karinordmann@example.no",
            "kari.nordmann@example.com",
            "kari.nordmann@example.no.evil",
            "kari.nordmann",
            "Kari Nordmann",
            "skriv til kari.nordmann@example.no",
            "%@example.no",
            "*",
        ] {
            assert!(!k.owns(IdentityKind::Email, other), "{other}");
        }
        assert!(k.owns(
            IdentityKind::EmailList,
            "Per <per@x.no>, \"Nordmann, Kari\" <kari.nordmann@example.no>"
        ));
        assert!(!k.owns(IdentityKind::EmailList, "Per <per@x.no>, annkari.nordmann@example.no"));
        assert!(k.owns(IdentityKind::EmailList, "per@x.no, kari.nordmann@example.no"));
        assert!(
            k.owns(IdentityKind::EmailList, "Prosjekt: kari.nordmann@example.no, per@x.no;"),
            "a group"
        );
        assert!(k.owns(
            IdentityKind::EmailList,
            "Prosjekt: Per <per@x.no>, Kari <kari.nordmann@example.no>;"
        ));
        assert!(
            !k.owns(IdentityKind::EmailList, "\"kari.nordmann@example.no\" <per@x.no>"),
            "a display name that looks like her address is not her address"
        );
        assert!(!k.owns(IdentityKind::EmailList, "per@x.no (kari.nordmann@example.no)"));
        assert!(
            !k.owns(IdentityKind::Email, "\u{212A}ari.nordmann@example.no"),
            "a Kelvin sign is not a K"
        );
        let in_sweden = Identities {
            phones: vec![Phone::parse("+46 70 123 45 67", "SE").unwrap()],
            phone_region: Some("NO".into()),
            ..Default::default()
        };
        assert!(in_sweden.owns(IdentityKind::Phone, "+46 70-123 45 67"));
        assert!(
            !in_sweden.owns(IdentityKind::Phone, "070-123 45 67"),
            "a national number is read in the controller's region (Norway), where it is not hers"
        );
        for same in [
            "+47 912 34 567",
            "91234567",
            "912 34 567",
            "+4791234567",
            "0047 912 34 567",
        ] {
            assert!(k.owns(IdentityKind::Phone, same), "{same}");
        }
        for other in [
            "+47 912 34 568",
            "+46 912 34 567",
            "912345678",
            "",
            "Ring Kari på 91234567",
            "Ordrenr 91234567",
            "tel:91234567",
            "91234567 / 22000000",
        ] {
            assert!(!k.owns(IdentityKind::Phone, other), "{other}");
        }
        assert!(k.owns(IdentityKind::GaClientId, "1234567890.1700000000"));
        assert!(!k.owns(IdentityKind::GaClientId, "1234567890.170000000"));
        assert!(
            !k.owns(IdentityKind::GaUserId, "1234567890.1700000000"),
            "kinds do not mix"
        );
    }

    #[test]
    fn a_claim_must_point_at_the_subjects_value() {
        let k = kari();
        let data = json!({"to": [{"address": "per@x.no"}, {"address": "kari.nordmann@example.no"}]});
        assert!(check_claims(&k, &data, &[MatchClaim::email("/to/1/address")]).is_ok());
        assert_eq!(
            check_claims(&k, &data, &[MatchClaim::email("/to/0/address")]),
            Err(Refusal::NotHers("/to/0/address".into()))
        );
        assert_eq!(
            check_claims(&k, &data, &[MatchClaim::email("/to/5/address")]),
            Err(Refusal::Missing("/to/5/address".into()))
        );
        assert_eq!(check_claims(&k, &data, &[]), Err(Refusal::NoClaim));
        let found =
            k.claims_anywhere(&json!({"epost": "kari.nordmann@example.no", "tlf": "912 34 567", "x": "per@x.no"}));
        assert_eq!(found, [MatchClaim::email("/epost"), MatchClaim::phone("/tlf")]);
    }

    #[test]
    fn quoted_strings_in_a_header_are_display_names_or_local_parts() {
        assert_eq!(
            address_tokens("\"Nordmann, Kari\" <kari@example.no>, ola@example.org"),
            ["kari@example.no", "ola@example.org"],
            "a comma in a quoted display name does not split the list"
        );
        assert_eq!(
            address_tokens("Someone <\"k.n\"@example.no>, other@example.org"),
            ["\"k.n\"@example.no", "other@example.org"],
            "a quoted local part is part of the address"
        );
        assert_eq!(
            address_tokens("\"k, n\"@example.no; \"a\\\"b\"@example.no"),
            ["\"k, n\"@example.no", "\"a\\\"b\"@example.no"],
            "bare quoted local parts, with a comma and an escaped quote"
        );
        assert_eq!(
            address_tokens("\"Kari \\\"K\\\" N.\" <kari@example.no>"),
            ["kari@example.no"],
            "an escaped quote does not end a display name"
        );
        assert_eq!(
            address_tokens("\"x (y\" <a@example.no>, (\"z) b@example.no"),
            ["a@example.no", "b@example.no"],
            "a ( in quotes opens no comment, a \" in a comment no quote"
        );

        let quoted = Identities {
            emails: vec![Email::parse("\"k.n\"@example.no").unwrap()],
            ..Default::default()
        };
        assert!(quoted.owns(
            IdentityKind::EmailList,
            "Someone <\"k.n\"@example.no>, other@example.org"
        ));
        assert!(quoted.owns(IdentityKind::EmailList, "other@example.org, \"K.N\"@example.no"));
        assert!(quoted.owns(IdentityKind::EmailList, "\"k.n\"(her work address)@example.no"));
        for other in [
            "\"k.n\" <other@example.org>",
            "k.n@example.no",
            "\"k.n\" @example.no",
            "\"x\"\"k.n\"@example.no",
            "<\"k.n\"@example.no.evil>",
            "\"k.n\"@example.no.evil",
        ] {
            assert!(!quoted.owns(IdentityKind::EmailList, other), "{other}");
        }

        let k = kari();
        for other in [
            "\"Kari\" <per@x.no>, \"kari.nordmann@example.no\"",
            "\"per\"kari.nordmann@example.no",
            "per.\"x\".kari.nordmann@example.no",
            "\"per\"(x)kari.nordmann@example.no",
            "\"kari.nordmann\"@example.no",
            "\"unclosed <kari.nordmann@example.no>",
            "<\"x\">kari.nordmann@example.no",
        ] {
            assert!(!k.owns(IdentityKind::EmailList, other), "{other}");
        }
        assert!(k.owns(IdentityKind::EmailList, "\"Kari\" kari.nordmann@example.no"));
    }

    /// Many generated look-alikes of the subject's address: none is hers.
    #[test]
    fn no_one_character_variant_of_her_address_is_hers() {
        let k = kari();
        let address = "kari.nordmann@example.no";
        let alphabet: Vec<char> = "abcdefghijklmnopqrstuvwxyz0123456789.+-_@%*".chars().collect();
        for i in 0..=address.len() {
            for c in &alphabet {
                let mut inserted = address.to_string();
                inserted.insert(i, *c);
                assert!(!k.owns(IdentityKind::Email, &inserted), "{inserted}");
                if i < address.len() {
                    let mut replaced: Vec<char> = address.chars().collect();
                    if replaced[i].eq_ignore_ascii_case(c) {
                        continue;
                    }
                    replaced[i] = *c;
                    let replaced: String = replaced.into_iter().collect();
                    assert!(!k.owns(IdentityKind::Email, &replaced), "{replaced}");
                }
            }
            if i < address.len() {
                let mut removed = address.to_string();
                removed.remove(i);
                assert!(!k.owns(IdentityKind::Email, &removed), "{removed}");
            }
        }
    }
}
