//! Refuses a next-page link to any origin but the vendor's own: a paging link from a
//! compromised or confused response must not carry our token elsewhere.

use url::Url;

use crate::{ConnectorError, Processor};

/// The origins (scheme, host, port — default ports normalised) a connector may follow.
#[derive(Debug, Clone)]
pub struct OriginGuard {
    processor: Processor,
    allowed: Vec<(String, String, u16)>,
}

fn origin_of(url: &Url) -> Option<(String, String, u16)> {
    Some((
        url.scheme().to_ascii_lowercase(),
        url.host_str()?.to_ascii_lowercase(),
        url.port_or_known_default()?,
    ))
}

impl OriginGuard {
    /// Trusts the configured base URL's origin.
    pub fn new(processor: Processor, base: &Url) -> OriginGuard {
        let mut guard = OriginGuard {
            processor,
            allowed: Vec::new(),
        };
        guard.allow(base);
        guard
    }

    /// Trusts one more origin, one the vendor's own discovery returned (e.g. SuperOffice's
    /// tenant state endpoint naming the tenant's new API host).
    pub fn allow(&mut self, url: &Url) {
        if let Some(origin) = origin_of(url)
            && !self.allowed.contains(&origin)
        {
            self.allowed.push(origin);
        }
    }

    /// Parses a next-page link and accepts it only on a trusted origin.
    pub fn check(&self, link: &str) -> Result<Url, ConnectorError> {
        let refuse = |why: &str| {
            ConnectorError::permanent(
                self.processor,
                "foreign_next_link",
                format!("refused to follow a next-page link {why}"),
            )
        };
        let url = Url::parse(link).map_err(|_| refuse("that is not a URL"))?;
        match origin_of(&url) {
            Some(origin) if self.allowed.contains(&origin) => Ok(url),
            _ => Err(refuse(&format!(
                "to {}://{}",
                url.scheme(),
                url.host_str().unwrap_or("?")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_vendors_origin_is_followed() {
        let base = Url::parse("https://graph.microsoft.com/v1.0").unwrap();
        let mut guard = OriginGuard::new(crate::Processor::Microsoft365, &base);
        assert!(
            guard
                .check("https://graph.microsoft.com/v1.0/users?$skiptoken=abc")
                .is_ok()
        );
        assert!(
            guard.check("https://GRAPH.microsoft.com:443/v1.0/users").is_ok(),
            "default port and case normalised"
        );
        for foreign in [
            "http://graph.microsoft.com/v1.0/users",
            "https://graph.microsoft.com:8443/v1.0/users",
            "https://graph.microsoft.com.evil.example/v1.0/users",
            "https://evil.example/?u=https://graph.microsoft.com",
            "/v1.0/users",
            "not a url",
        ] {
            assert!(guard.check(foreign).is_err(), "{foreign} was followed");
        }
        guard.allow(&Url::parse("https://online2.superoffice.com/Cust1/api").unwrap());
        assert!(
            guard
                .check("https://online2.superoffice.com/Cust1/api/v1/Person?$skip=50")
                .is_ok()
        );
    }
}
