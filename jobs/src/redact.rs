//! Text dsr keeps (a task's error and reason, an audit note) is scrubbed of identities before
//! it is stored: the subject's identifiers in every form a URL or a vendor writes them
//! (plain, any case, percent-encoded once or twice, Gmail's dot-free form), any other e-mail
//! address, and the query of any URL (a query carries `$filter=…'kari%40example.no'`).
//! Connectors write their own messages without these; this is the net under them.

use dsr_connector::Identities;

/// What an identifier of the subject is replaced by.
pub const SUBJECT: &str = "[subject]";
/// What any other e-mail address is replaced by.
pub const ADDRESS: &str = "[address]";
/// What a URL's query is replaced by.
pub const QUERY: &str = "?[query]";

/// Every form of the subject's identifiers worth searching stored text for, lowercase,
/// longest first (so a longer form is replaced before a shorter one inside it).
pub fn encodings(ids: &Identities) -> Vec<String> {
    let mut forms = Vec::new();
    for email in &ids.emails {
        let plain = email.as_str().to_string();
        let mut variants = vec![plain.clone()];
        // Gmail ignores dots in the local part, so a vendor may echo the dot-free form.
        if let Some((local, domain)) = plain.rsplit_once('@')
            && local.contains('.')
        {
            variants.push(format!("{}@{domain}", local.replace('.', "")));
        }
        for v in variants {
            forms.push(percent_encode(&v));
            forms.push(percent_encode(&percent_encode(&v)));
            forms.push(v.replace('@', "%40"));
            forms.push(v);
        }
    }
    for phone in &ids.phones {
        let e164 = phone.as_str().to_string();
        let digits = e164.trim_start_matches('+').to_string();
        forms.push(format!("%2b{digits}"));
        // The national digits (after a two-digit country code), as vendors write either.
        if let Some(national) = digits.get(2..) {
            forms.push(national.to_string());
        }
        forms.push(digits);
        forms.push(e164);
    }
    forms.extend(ids.names.iter().cloned());
    forms.extend(ids.ga_client_ids.iter().cloned());
    forms.extend(ids.ga_user_ids.iter().cloned());
    let mut forms: Vec<String> = forms
        .into_iter()
        .map(|f| f.trim().to_lowercase())
        .filter(|f| f.chars().count() >= 4)
        .collect();
    forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    forms.dedup();
    forms
}

/// Percent-encodes everything but RFC 3986's unreserved characters, lowercase hex (searches
/// are case-blind anyway).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// `text` as dsr may keep it: without the subject's identifiers (her addresses in every form
/// [`encodings`] lists, her phone numbers however they are spaced, her names and GA ids as
/// whole words), other addresses or URL queries.
pub fn scrub(text: &str, ids: &Identities) -> String {
    let addresses: Vec<String> = encodings(&Identities {
        emails: ids.emails.clone(),
        ..Identities::default()
    });
    let text = replace_forms(text, &addresses);
    let text = replace_phone_runs(&text, &phone_digits(ids));
    let words: Vec<String> = ids
        .names
        .iter()
        .chain(&ids.ga_client_ids)
        .chain(&ids.ga_user_ids)
        .map(|w| w.trim().to_string())
        .filter(|w| w.chars().count() >= 3)
        .collect();
    let text = replace_words(&text, &words);
    let text = replace_addresses(&text);
    strip_queries(&text)
}

/// The digits the subject's phone numbers are written with: the whole international number,
/// with `00` for `+`, and the national number after a one-, two- or three-digit country code
/// (dsr holds E.164 only; trying each length is cheaper than a numbering-plan table, and a run
/// of digits must equal one of them whole to be replaced).
fn phone_digits(ids: &Identities) -> Vec<String> {
    let mut forms = Vec::new();
    for phone in &ids.phones {
        let digits: String = phone.as_str().chars().filter(char::is_ascii_digit).collect();
        for cc in 1..=3 {
            if let Some(national) = digits.get(cc..).filter(|n| n.len() >= 6) {
                forms.push(national.to_string());
            }
        }
        forms.push(format!("00{digits}"));
        forms.push(digits);
    }
    forms
}

/// What may stand between the digits of a phone number as people and vendors write it.
fn is_phone_separator(c: char) -> bool {
    matches!(c, ' ' | '.' | '-' | '(' | ')' | '/' | '\u{a0}')
}

/// Replaces each run of digits and separators (with a leading `+` or `%2B`) whose digits are one of
/// `numbers` by [`SUBJECT`]: `+47 912 34 567`, `912 34 567`, `(+47) 91234567`.
fn replace_phone_runs(text: &str, numbers: &[String]) -> String {
    if numbers.is_empty() {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        // A `+`, or `%2B` as a URL writes it, may lead the number.
        let plus = match chars[i] {
            '+' => 1,
            '%' if starts_with_at(&chars[i..], "%2b") => 3,
            _ => 0,
        };
        let leads = chars.get(i + plus).is_some_and(char::is_ascii_digit);
        if !leads {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let mut last_digit = i + plus;
        let mut end = last_digit + 1;
        while end < chars.len() && (chars[end].is_ascii_digit() || is_phone_separator(chars[end])) {
            if chars[end].is_ascii_digit() {
                last_digit = end;
            }
            end += 1;
        }
        // The digits after the lead: `%2B`'s own 2 is not one of the number's.
        out.push_str(&replace_in_run(&chars[i..=last_digit], plus, numbers));
        i = last_digit + 1;
    }
    out
}

/// One run of digits and separators (its first `lead` chars a `+` or `%2B`), with every
/// stretch of whole digit groups that spells one of `numbers` replaced: a run may hold two
/// numbers side by side (`+47 912 34 567 (912 34 567)`), so each group is tried as a start.
fn replace_in_run(run: &[char], lead: usize, numbers: &[String]) -> String {
    let mut groups: Vec<(usize, usize)> = Vec::new(); // [start, end) of each digit group
    let mut at = lead;
    while at < run.len() {
        if run[at].is_ascii_digit() {
            let start = at;
            while at < run.len() && run[at].is_ascii_digit() {
                at += 1;
            }
            groups.push((start, at));
        } else {
            at += 1;
        }
    }
    let longest = numbers.iter().map(String::len).max().unwrap_or(0);
    let mut out = String::new();
    let mut written = 0; // run[..written] is in `out`
    let mut g = 0;
    while g < groups.len() {
        let mut digits = String::new();
        let mut matched = None;
        for (e, &(start, end)) in groups.iter().enumerate().skip(g) {
            digits.extend(&run[start..end]);
            if digits.len() > longest {
                break;
            }
            if numbers.contains(&digits) {
                matched = Some(e);
            }
        }
        match matched {
            Some(e) => {
                // The lead (or a `+` just before the group) belongs to the number.
                let mut from = groups[g].0;
                if g == 0 {
                    from = 0;
                } else if from > 0 && run[from - 1] == '+' {
                    from -= 1;
                }
                out.extend(&run[written..from]);
                out.push_str(SUBJECT);
                written = groups[e].1;
                g = e + 1;
            }
            None => g += 1,
        }
    }
    out.extend(&run[written..]);
    out
}

/// Replaces each of `words` where it stands as a whole word (not inside a longer one: the name
/// "Tore" is not in "store"), in any case (Unicode: "ÅSE" is "Åse").
fn replace_words(text: &str, words: &[String]) -> String {
    // One lowercase char per char, so positions in the lowered copy are positions in `text`.
    let fold = |c: char| {
        let mut lower = c.to_lowercase();
        match (lower.next(), lower.next()) {
            (Some(l), None) => l,
            _ => c,
        }
    };
    let mut chars: Vec<char> = text.chars().collect();
    let mut words: Vec<Vec<char>> = words.iter().map(|w| w.chars().map(fold).collect()).collect();
    words.sort_by_key(|w| std::cmp::Reverse(w.len()));
    for word in words.iter().filter(|w| !w.is_empty()) {
        let lowered: Vec<char> = chars.iter().copied().map(fold).collect();
        let mut out: Vec<char> = Vec::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            let fits = lowered[i..].starts_with(word)
                && (i == 0 || !chars[i - 1].is_alphanumeric())
                && chars.get(i + word.len()).is_none_or(|c| !c.is_alphanumeric());
            if fits {
                out.extend(SUBJECT.chars());
                i += word.len();
            } else {
                out.push(chars[i]);
                i += 1;
            }
        }
        chars = out;
    }
    chars.into_iter().collect()
}

/// Replaces each of `forms` (lowercase) wherever it occurs in `text`, in any ASCII case.
fn replace_forms(text: &str, forms: &[String]) -> String {
    let mut text = text.to_string();
    for form in forms {
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        // ASCII lowercasing keeps every byte offset, so offsets found in the lowered copy
        // are offsets in the original.
        while let Some(at) = find_ascii_insensitive(rest, form) {
            out.push_str(&rest[..at]);
            out.push_str(SUBJECT);
            rest = &rest[at + form.len()..];
        }
        out.push_str(rest);
        text = out;
    }
    text
}

fn find_ascii_insensitive(haystack: &str, needle: &str) -> Option<usize> {
    let lowered = haystack.to_ascii_lowercase();
    let needle = needle.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lowered[from..].find(&needle) {
        let at = from + found;
        // A needle with non-ASCII letters matched in a lowered copy still starts and ends on
        // character boundaries of the original (offsets are the same).
        if haystack.is_char_boundary(at) && haystack.is_char_boundary(at + needle.len()) {
            return Some(at);
        }
        from = at + 1;
        while from < lowered.len() && !lowered.is_char_boundary(from) {
            from += 1;
        }
    }
    None
}

fn is_local_char(c: char) -> bool {
    c.is_alphanumeric()
        || matches!(
            c,
            '.' | '_' | '%' | '+' | '-' | '\'' | '!' | '#' | '$' | '&' | '*' | '=' | '^' | '`' | '{' | '|' | '}' | '~'
        )
}

fn is_domain_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '-')
}

/// Replaces anything shaped like an e-mail address (`local@domain.tld`, or with `%40` for
/// the `@`) by [`ADDRESS`].
fn replace_addresses(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut start_of_pending = 0; // chars[start_of_pending..i] are not yet written
    while i < chars.len() {
        let at_len = if chars[i] == '@' {
            1
        } else if starts_with_at(&chars[i..], "%40") {
            3
        } else if starts_with_at(&chars[i..], "%2540") {
            5
        } else {
            0
        };
        if at_len == 0 {
            i += 1;
            continue;
        }
        let mut left = i;
        while left > start_of_pending && is_local_char(chars[left - 1]) {
            left -= 1;
        }
        let mut right = i + at_len;
        while right < chars.len() && is_domain_char(chars[right]) {
            right += 1;
        }
        // A trailing dot ends the sentence, not the domain.
        while right > i + at_len && chars[right - 1] == '.' {
            right -= 1;
        }
        let domain: String = chars[i + at_len..right].iter().collect();
        if left < i && domain.contains('.') && !domain.starts_with('.') {
            out.extend(&chars[start_of_pending..left]);
            out.push_str(ADDRESS);
            start_of_pending = right;
            i = right;
        } else {
            i += at_len;
        }
    }
    out.extend(&chars[start_of_pending..]);
    out
}

/// Whether `chars` begins with `pattern` (ASCII, any case).
fn starts_with_at(chars: &[char], pattern: &str) -> bool {
    chars.len() >= pattern.len()
        && chars
            .iter()
            .zip(pattern.chars())
            .all(|(c, p)| c.eq_ignore_ascii_case(&p))
}

/// Cuts the query off every `http://` or `https://` URL in `text`.
fn strip_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let lowered = rest.to_ascii_lowercase();
        let Some(start) = [lowered.find("http://"), lowered.find("https://")]
            .into_iter()
            .flatten()
            .min()
        else {
            out.push_str(rest);
            return out;
        };
        let end = rest[start..]
            // Quotes belong to a query as vendors echo it (`$search="…"`), so only
            // whitespace and angle brackets end the URL.
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '`'))
            .map_or(rest.len(), |n| start + n);
        let url = &rest[start..end];
        out.push_str(&rest[..start]);
        match url.find('?') {
            Some(q) => {
                out.push_str(&url[..q]);
                out.push_str(QUERY);
            }
            None => out.push_str(url),
        }
        rest = &rest[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsr_connector::{Email, Phone};

    fn kari() -> Identities {
        let mut ids = Identities::default();
        ids.add_email(Email::parse("Kari.Nordmann@example.no").unwrap());
        ids.phones.push(Phone::parse("+47 912 34 567", "NO").unwrap());
        ids
    }

    #[test]
    fn every_form_of_the_subjects_identifiers_is_replaced() {
        let ids = kari();
        for form in [
            "kari.nordmann@example.no",
            "KARI.NORDMANN@EXAMPLE.NO",
            "kari.nordmann%40example.no",
            "Kari.Nordmann%40Example.no",
            "kari.nordmann%2540example.no",
            "karinordmann@example.no",
            "karinordmann%40example.no",
            "+4791234567",
            "%2B4791234567",
            "4791234567",
            "91234567",
        ] {
            let text = format!("the vendor said: no record for '{form}' (try again)");
            let kept = scrub(&text, &ids);
            assert_eq!(kept, "the vendor said: no record for '[subject]' (try again)", "{form}");
        }
    }

    #[test]
    fn other_addresses_and_url_queries_are_replaced_and_the_rest_kept() {
        let ids = kari();
        let text = "sa dsr-sa@project.iam.gserviceaccount.com (key 0a1b) refused; GET \
                    https://graph.example/v1.0/users/x/messages?$search=\"kari%40example.no\"&$top=5 failed. \
                    Ola (ola%40example.org) too. Write to support@vendor.example.";
        let kept = scrub(text, &ids);
        assert_eq!(
            kept,
            "sa [address] (key 0a1b) refused; GET https://graph.example/v1.0/users/x/messages?[query] failed. \
             Ola ([address]) too. Write to [address]."
        );
        // dsr's own advice stays readable.
        let advice =
            "microsoft365 failed permanently (403:ErrorAccessDenied): grant Mail.ReadWrite; run `dsr retry 1f2e`";
        assert_eq!(scrub(advice, &ids), advice);
        // Not an address: an `@` without a domain, a decorator, a version.
        for text in ["@here", "x@y", "user@localhost", "a @ b.c"] {
            assert_eq!(scrub(text, &ids), text);
        }
    }

    #[test]
    fn phone_numbers_however_spaced_names_as_words_and_double_encoded_addresses() {
        let mut ids = kari();
        ids.names.push("Åse Tore".into());
        ids.phones.push(Phone::parse("+1 212 555 1234", "US").unwrap());
        for (text, kept) in [
            ("ring +47 912 34 567 i dag", "ring [subject] i dag"),
            ("ring 912 34 567.", "ring [subject]."),
            ("(+47) 91234567", "([subject]"),
            ("0047-912-34-567", "[subject]"),
            ("call (212) 555-1234 now", "call ([subject] now"),
            ("ÅSE TORE wrote", "[subject] wrote"),
            // Not her number, not her name: a longer run, a word inside another word.
            ("order 912345678 shipped", "order 912345678 shipped"),
            (
                "+47 912 34 567 (912 34 567, 22 33 44 55)",
                "[subject] ([subject], 22 33 44 55)",
            ),
            (
                "could not store records for åse toresen",
                "could not store records for åse toresen",
            ),
            ("from ola%2540example.org", "from [address]"),
        ] {
            assert_eq!(scrub(text, &ids), kept, "{text}");
        }
    }

    #[test]
    fn text_with_non_ascii_is_cut_on_character_boundaries() {
        let ids = kari();
        let text = "Ærlig: kåre@example.no og KARI.NORDMANN@example.no – ferdig";
        assert_eq!(scrub(text, &ids), "Ærlig: [address] og [subject] – ferdig");
    }
}
