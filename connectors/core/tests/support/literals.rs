//! Readers for the literals dsr writes into vendor queries, shared by the property tests and
//! the fuzz targets (`fuzz/`): what a reader gives back must be exactly what was quoted.
#![allow(dead_code)]

/// Reads an OData string literal from the start of `input` as the OData ABNF does (a `'`
/// inside is written `''`): the value and what follows the closing quote.
pub fn read_odata_literal(input: &str) -> Option<(String, &str)> {
    let rest = input.strip_prefix('\'')?;
    let mut value = String::new();
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if matches!(chars.peek(), Some((_, '\''))) {
                chars.next();
                value.push('\'');
            } else {
                return Some((value, &rest[i + 1..]));
            }
        } else {
            value.push(c);
        }
    }
    None
}

/// Reads a KQL phrase (`"…"`, `\` escaping the next character) from the start of `input`:
/// the value and what follows the closing quote.
pub fn read_kql_phrase(input: &str) -> Option<(String, &str)> {
    let rest = input.strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => value.push(chars.next()?.1),
            '"' => return Some((value, &rest[i + 1..])),
            c => value.push(c),
        }
    }
    None
}
