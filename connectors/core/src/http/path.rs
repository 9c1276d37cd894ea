//! Vendor data (ids, resource names) placed into URL paths: each value is percent-encoded
//! as one path segment, so a `/`, `..`, `?` or `#` in an id can neither move a request
//! elsewhere on the host nor cut off its query (`?permanent=true`).

use std::borrow::Cow;

use url::Url;

use crate::{ConnectorError, Processor};

/// The bytes left as they are: RFC 3986 §2.3 unreserved characters, and of the other
/// characters a path segment may hold (§3.3 `pchar`) those that cannot change what a vendor
/// reads from it: `$` (OData's `$value`), `@` (addresses as ids), `!*(),`. Encoded are
/// `/ ? # %`, spaces and controls, and also `:` (Google's `…:deleteContact` method suffix),
/// `;` (path parameters some servers strip), `&`, `=`, `+` and `'`.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'_' | b'~' | b'$' | b'@' | b'!' | b'*' | b'(' | b')' | b','
        )
}

/// "", "." and ".." cannot be one segment: a URL parser drops or climbs them, encoded
/// (`%2e%2e`) or not.
fn check(processor: Processor, value: &str) -> Result<(), ConnectorError> {
    if matches!(value, "" | "." | "..") {
        return Err(ConnectorError::permanent(
            processor,
            "unexpected_response",
            format!("{processor} named a record `{value}`, which cannot stand in a URL path; nothing was sent"),
        ));
    }
    Ok(())
}

/// `value` as one percent-encoded path segment (see `unreserved` for what is left as is).
/// An empty, `.` or `..` value is refused.
pub fn path_segment(processor: Processor, value: &str) -> Result<Cow<'_, str>, ConnectorError> {
    check(processor, value)?;
    if value.bytes().all(unreserved) {
        return Ok(Cow::Borrowed(value));
    }
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if unreserved(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(Cow::Owned(out))
}

/// Appends `segments` to `url`'s path, each one segment ([`path_segment`]'s rules).
pub fn push_segments(processor: Processor, url: &mut Url, segments: &[&str]) -> Result<(), ConnectorError> {
    let mut encoded = Vec::with_capacity(segments.len());
    for segment in segments {
        encoded.push(path_segment(processor, segment)?);
    }
    let base = url.path().trim_end_matches('/').to_string();
    url.set_path(&format!("{base}/{}", encoded.join("/")));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_stays_one_segment_whatever_it_holds() {
        let p = Processor::Wix;
        let hostile = "x/../../admin?permanent=false#";
        let encoded = path_segment(p, hostile).unwrap();
        assert_eq!(encoded, "x%2F..%2F..%2Fadmin%3Fpermanent%3Dfalse%23");
        let url = Url::parse(&format!(
            "https://api.example/contacts/v4/contacts/{encoded}?permanent=true"
        ))
        .unwrap();
        assert_eq!(
            url.path(),
            "/contacts/v4/contacts/x%2F..%2F..%2Fadmin%3Fpermanent%3Dfalse%23"
        );
        assert_eq!(url.query(), Some("permanent=true"));
        assert_eq!(path_segment(p, "c123-abc_9.~").unwrap(), Cow::Borrowed("c123-abc_9.~"));
        assert_eq!(path_segment(p, "a b%2e@").unwrap(), "a%20b%252e@");
        assert_eq!(path_segment(p, "c1:updateContact").unwrap(), "c1%3AupdateContact");
        assert_eq!(path_segment(p, "$value").unwrap(), Cow::Borrowed("$value"));
        for bad in ["", ".", ".."] {
            let err = path_segment(p, bad).unwrap_err();
            assert_eq!(err.code(), "permanent:unexpected_response", "{err}");
        }
        let mut url = Url::parse("https://graph.example/v1.0/").unwrap();
        push_segments(p, &mut url, &["users", "a/b c@x.no", "messages", "..%2e"]).unwrap();
        assert_eq!(
            url.as_str(),
            "https://graph.example/v1.0/users/a%2Fb%20c@x.no/messages/..%252e"
        );
        assert!(push_segments(p, &mut url, &["users", ".."]).is_err());
    }
}
