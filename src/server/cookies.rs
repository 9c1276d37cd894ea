//! Reading a cookie the server set: the subject's download grant and the dashboard's session.

use axum::http::{HeaderMap, header};

/// The value of cookie `name` if it is shaped like the random tokens the server hands out
/// (anything else is treated as no cookie at all).
pub fn token(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_string())
        .filter(|v| crate::subject::secrets::looks_like_token(v))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn a_cookie_is_found_among_others_and_only_if_it_looks_like_a_token() {
        let token = crate::subject::secrets::token();
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        headers.append(
            header::COOKIE,
            HeaderValue::try_from(format!("x=y; dsr_session={token}")).unwrap(),
        );
        assert_eq!(super::token(&headers, "dsr_session"), Some(token));
        assert_eq!(super::token(&headers, "a"), None, "not token-shaped");
        assert_eq!(super::token(&headers, "missing"), None);
    }
}
