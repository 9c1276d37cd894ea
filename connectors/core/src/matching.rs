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
            IdentityKind::EmailList => address_tokens(value).any(|a| self.owns_email(&a)),
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

/// The addresses in a header value (`"Nordmann, Kari" <kari@example.no>, per@x.no`): quoted
/// display names and comments are left out (a name may look like an address), then each
/// mailbox is its `<…>` part when it has one, else its bare address.
fn address_tokens(value: &str) -> impl Iterator<Item = String> {
    let mut plain = String::with_capacity(value.len());
    let (mut quoted, mut comment, mut escaped) = (false, 0usize, false);
    for c in value.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted || comment > 0 => escaped = true,
            '"' if comment == 0 => quoted = !quoted,
            '(' if !quoted => comment += 1,
            ')' if !quoted && comment > 0 => comment -= 1,
            _ if quoted || comment > 0 => {}
            c => plain.push(c),
        }
    }
    plain
        .split([',', ';'])
        .map(|mailbox| {
            // A group (`Prosjekt: a@x.no, b@y.no;`): its name is not part of the first address.
            match mailbox.find(':') {
                Some(i) if !mailbox[..i].contains(['<', '@']) => &mailbox[i + 1..],
                _ => mailbox,
            }
        })
        .filter_map(|mailbox| match (mailbox.find('<'), mailbox.rfind('>')) {
            (Some(open), Some(close)) if open < close => Some(mailbox[open + 1..close].trim().to_string()),
            (None, None) => Some(mailbox.trim().to_string()),
            _ => None,
        })
        .filter(|a| a.contains('@') && !a.contains(char::is_whitespace))
        .collect::<Vec<_>>()
        .into_iter()
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
