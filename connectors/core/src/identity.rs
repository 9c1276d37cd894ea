//! The identities a subject is known by: e-mail addresses, phone numbers, names and
//! vendor ids. A name alone never matches anything; it only labels or narrows.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("`{0}` is not a valid e-mail address (RFC 5322 addr-spec such as kari@example.no)")]
    Email(String),
    #[error("`{value}` is not a valid phone number for region {region} (use E.164, e.g. +4791234567)")]
    Phone { value: String, region: String },
    #[error("unknown phone region `{0}`: use an ISO 3166 code such as NO")]
    Region(String),
    #[error("a {0} may not be empty")]
    Empty(&'static str),
}

/// An e-mail address, validated and compared case-insensitively (held lowercased).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, IdentityError> {
        let trimmed = raw.trim();
        // Display text ("Kari <kari@x>") is refused: an identity is a bare address.
        let options = email_address::Options {
            allow_display_text: false,
            minimum_sub_domains: 2,
            ..Default::default()
        };
        email_address::EmailAddress::parse_with_options(trimmed, options)
            .map_err(|_| IdentityError::Email(raw.to_string()))?;
        Ok(Email(trimmed.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `other` is this address, lowercased as `parse` lowercased it (so an address
    /// written as the subject typed it matches), except that a Unicode look-alike of an ASCII
    /// letter (the Kelvin sign `K` lowercases to `k`) is another address.
    pub fn matches(&self, other: &str) -> bool {
        let other = other.trim();
        if self.0.is_ascii() {
            return other.is_ascii() && self.0.eq_ignore_ascii_case(other);
        }
        // A non-ASCII character that lowercases into ASCII alone stands in for an ASCII letter
        // it is not: refused (in Unicode today only the Kelvin sign does). `İ` lowercases into
        // `i` and a combining dot: the mark stays, so it can only equal an address held with
        // that very `i` and dot, which is how `parse` holds `İ` (the same lowercasing on both
        // sides).
        let disguised = other
            .chars()
            .any(|c| !c.is_ascii() && c.to_lowercase().all(|l| l.is_ascii()));
        !disguised && self.0 == other.to_lowercase()
    }
}

impl TryFrom<String> for Email {
    type Error = IdentityError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Email::parse(&value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}

/// Identities are personal data: Debug never shows them.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

/// A phone number in E.164 form (`+4791234567`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    /// Parses a number written nationally (for `region`) or internationally.
    pub fn parse(raw: &str, region: &str) -> Result<Self, IdentityError> {
        let id: phonenumber::country::Id = region
            .trim()
            .to_uppercase()
            .parse()
            .map_err(|_| IdentityError::Region(region.to_string()))?;
        let invalid = || IdentityError::Phone {
            value: raw.to_string(),
            region: region.to_string(),
        };
        let number = phonenumber::parse(Some(id), raw.trim()).map_err(|_| invalid())?;
        if !phonenumber::is_valid(&number) {
            return Err(invalid());
        }
        Ok(Phone(number.format().mode(phonenumber::Mode::E164).to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `other`, as a vendor writes it (E.164, spaced, or national for this number's
    /// own country), is this number.
    pub fn matches(&self, other: &str) -> bool {
        self.matches_in(other, None)
    }

    /// Whether `other` is this number, a national form read in `region` (the controller's
    /// default) when given, else in this number's own country.
    pub fn matches_in(&self, other: &str, region: Option<&str>) -> bool {
        // Only a value that is a phone number as a whole: the parser would otherwise pick a
        // number out of free text ("Ring Kari på 91234567", "Ordrenr 91234567").
        let phone_characters = |c: char| c.is_ascii_digit() || " +-().\u{a0}/".contains(c);
        if other.trim().is_empty() || !other.trim().chars().all(phone_characters) {
            return false;
        }
        let region = region
            .and_then(|r| r.trim().to_uppercase().parse::<phonenumber::country::Id>().ok())
            .or_else(|| phonenumber::parse(None, &self.0).ok().and_then(|n| n.country().id()));
        phonenumber::parse(region, other.trim())
            .map(|n| n.format().mode(phonenumber::Mode::E164).to_string() == self.0)
            .unwrap_or(false)
    }
}

/// Rectification's one rule for a record's list of values (addresses, phone numbers): each
/// entry holding one of the subject's values is corrected, the first in its place and any
/// further old ones dropped; entries that are not hers stay as they are. When none was hers,
/// the corrected value is added first: the record is hers, so its value for this field is too.
pub fn correct_values<T: Clone>(
    entries: &[T],
    is_hers: impl Fn(&T) -> bool,
    correct: impl Fn(&T) -> T,
    add: impl FnOnce() -> T,
) -> Vec<T> {
    let mut out = Vec::with_capacity(entries.len() + 1);
    let mut corrected = false;
    for entry in entries {
        if !is_hers(entry) {
            out.push(entry.clone());
        } else if !corrected {
            out.push(correct(entry));
            corrected = true;
        }
    }
    if !corrected {
        out.insert(0, add());
    }
    out
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Phone(<redacted>)")
    }
}

/// Everything the subject is known by, as given in the request.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identities {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<Email>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<Phone>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ga_client_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ga_user_ids: Vec<String>,
    /// The region a vendor's nationally written phone number is read in: the controller's
    /// `default_phone_region`, set with the request (each phone's own country when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_region: Option<String>,
}

impl Identities {
    /// True when at least one identity can match records (a name cannot).
    pub fn has_matchable(&self) -> bool {
        !(self.emails.is_empty()
            && self.phones.is_empty()
            && self.ga_client_ids.is_empty()
            && self.ga_user_ids.is_empty())
    }

    /// Adds an e-mail unless an equal one is present (e-mails compare case-insensitively).
    pub fn add_email(&mut self, email: Email) {
        if !self.emails.contains(&email) {
            self.emails.push(email);
        }
    }

    pub fn add_phone(&mut self, phone: Phone) {
        if !self.phones.contains(&phone) {
            self.phones.push(phone);
        }
    }

    /// A subject no vendor holds (an address in the reserved `.invalid` domain), for checks
    /// that prove a search works without touching anyone's data.
    pub fn probe() -> Identities {
        Identities {
            emails: vec![Email("dsr-doctor@invalid.example".into())],
            ..Default::default()
        }
    }

    /// Whether `value` is one of the subject's e-mail addresses.
    pub fn owns_email(&self, value: &str) -> bool {
        self.emails.iter().any(|e| e.matches(value))
    }

    /// Whether `value` is one of the subject's phone numbers, however the vendor writes it.
    pub fn owns_phone(&self, value: &str) -> bool {
        self.phones
            .iter()
            .any(|p| p.matches_in(value, self.phone_region.as_deref()))
    }

    /// Every identity value as a string, for keyed hashing and for scanning stored
    /// text for leaks of personal data.
    pub fn values(&self) -> Vec<&str> {
        self.emails
            .iter()
            .map(Email::as_str)
            .chain(self.phones.iter().map(Phone::as_str))
            .chain(self.names.iter().map(String::as_str))
            .chain(self.ga_client_ids.iter().map(String::as_str))
            .chain(self.ga_user_ids.iter().map(String::as_str))
            .collect()
    }
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identities")
            .field("emails", &self.emails.len())
            .field("phones", &self.phones.len())
            .field("names", &self.names.len())
            .field("ga_client_ids", &self.ga_client_ids.len())
            .field("ga_user_ids", &self.ga_user_ids.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_parse_rfc5322_and_compare_case_insensitively() {
        let a = Email::parse("Kari.Nordmann@Example.NO").unwrap();
        let b = Email::parse("kari.nordmann@example.no").unwrap();
        assert_eq!(a, b);
        assert!(a.matches("KARI.nordmann@example.no"));
        assert!(Email::parse("o'brien@example.ie").is_ok(), "' is legal in a local part");
        for bad in [
            "",
            "kari",
            "kari@",
            "@example.no",
            "kari@@example.no",
            "Kari <kari@example.no>",
            "kari@localhost",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn an_address_matches_itself_as_typed_but_no_look_alike() {
        // `İ` lowercases to `i` and a combining dot: held that way, and written back as typed.
        let dotted = Email::parse("KARİ@example.no").unwrap();
        assert_eq!(dotted.as_str(), "kari\u{307}@example.no");
        assert!(dotted.matches("KARİ@example.no"), "as typed");
        assert!(dotted.matches("karİ@EXAMPLE.no"), "as typed, other ASCII case");
        assert!(dotted.matches("kari\u{307}@example.no"), "as stored");
        assert!(dotted.matches("KARI\u{307}@example.no"), "as stored, upper case");
        assert!(!dotted.matches("kari@example.no"), "the dot is part of her address");
        assert!(!dotted.matches("\u{212A}ARİ@example.no"), "a Kelvin sign is not a K");
        // The Kelvin sign lowercases into `k` alone: a look-alike, for ASCII and non-ASCII
        // addresses both.
        let plain = Email::parse("kari@example.no").unwrap();
        assert!(!plain.matches("\u{212A}ari@example.no"));
        let norwegian = Email::parse("kåre@example.no").unwrap();
        assert!(norwegian.matches("KÅRE@example.no"));
        assert!(!norwegian.matches("\u{212A}åre@example.no"));
        // A long s is its own letter (it uppercases to `S` but lowercases to itself).
        let s = Email::parse("søren@example.no").unwrap();
        assert!(!s.matches("\u{17F}øren@example.no"));
        assert!(
            !Email::parse("sara@example.no")
                .unwrap()
                .matches("\u{17F}ara@example.no")
        );
        // Nor does a dotless `ı` stand in for `i`.
        assert!(!plain.matches("kar\u{131}@example.no"));
    }

    #[test]
    fn phones_normalise_to_e164_with_a_default_region() {
        assert_eq!(Phone::parse("912 34 567", "NO").unwrap().as_str(), "+4791234567");
        assert_eq!(Phone::parse("+47 912 34 567", "SE").unwrap().as_str(), "+4791234567");
        assert_eq!(Phone::parse("0047 91234567", "NO").unwrap().as_str(), "+4791234567");
        assert!(Phone::parse("12", "NO").is_err());
        assert!(Phone::parse("hello", "NO").is_err());
        assert!(matches!(Phone::parse("91234567", "XX"), Err(IdentityError::Region(_))));
    }

    #[test]
    fn a_name_alone_is_not_matchable_and_debug_hides_values() {
        let mut ids = Identities {
            names: vec!["Kari Nordmann".into()],
            ..Default::default()
        };
        assert!(!ids.has_matchable());
        ids.add_email(Email::parse("kari@example.no").unwrap());
        ids.add_email(Email::parse("KARI@example.no").unwrap());
        assert_eq!(ids.emails.len(), 1);
        assert!(ids.has_matchable());
        let debug = format!("{ids:?}");
        assert!(!debug.contains("kari"), "{debug}");
    }
}

#[cfg(test)]
mod quoted_tests {
    use super::*;

    #[test]
    fn quoted_local_parts_with_a_double_quote_are_addresses() {
        assert!(Email::parse(r#""kari\"n"@example.no"#).is_ok());
    }

    #[test]
    fn the_subjects_values_are_corrected_and_the_others_kept() {
        let kari = Identities {
            phones: vec![Phone::parse("912 34 567", "NO").unwrap()],
            ..Default::default()
        };
        assert!(kari.owns_phone("+47 912 34 567") && kari.owns_phone("91234567") && kari.owns_phone("+4791234567"));
        assert!(!kari.owns_phone("+47 22 00 00 00") && !kari.owns_phone("912345678"));
        let phones = ["+47 22 00 00 00", "912 34 567", "+4791234567"];
        let corrected = correct_values(
            &phones,
            |p| kari.owns_phone(p),
            |_| "+47 987 65 432",
            || "+47 987 65 432",
        );
        assert_eq!(
            corrected,
            ["+47 22 00 00 00", "+47 987 65 432"],
            "hers replaced once, the switchboard kept"
        );
        let none = correct_values(&["+47 22 00 00 00"], |p| kari.owns_phone(p), |_| "new", || "new");
        assert_eq!(none, ["new", "+47 22 00 00 00"]);
    }
}
