//! Records flattened for spreadsheets: nested objects and arrays become dotted columns
//! (`info.name.first`, `emails.0.email`), and every cell made safe to open in one.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;

/// Every leaf of `value` under its dotted path.
pub fn flatten(value: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(value, String::new(), &mut out);
    out
}

fn walk(value: &Value, path: String, out: &mut BTreeMap<String, String>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                walk(v, join(k), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, join(&i.to_string()), out);
            }
        }
        Value::Null => {
            out.insert(if path.is_empty() { "value".into() } else { path }, String::new());
        }
        Value::String(s) => {
            out.insert(if path.is_empty() { "value".into() } else { path }, s.clone());
        }
        other => {
            out.insert(if path.is_empty() { "value".into() } else { path }, other.to_string());
        }
    }
}

/// A CSV cell (a value or a column name) as a spreadsheet may safely open it. Mail subjects,
/// comments and form fields are text others wrote; a cell beginning with `=`, `+`, `-`, `@`,
/// a tab or a carriage return would run as a formula (CSV injection), so it gets a leading
/// `'`, which spreadsheets read as "text". As OWASP advises, negative numbers too: the JSON
/// beside the CSV keeps every value as it was.
/// <https://owasp.org/www-community/attacks/CSV_Injection>
pub fn csv_cell(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_values_get_dotted_columns() {
        let flat =
            flatten(&json!({"info": {"name": {"first": "Kari"}}, "emails": [{"email": "a@b.no"}], "n": 3, "x": null}));
        assert_eq!(flat["info.name.first"], "Kari");
        assert_eq!(flat["emails.0.email"], "a@b.no");
        assert_eq!(flat["n"], "3");
        assert_eq!(flat["x"], "");
    }

    #[test]
    fn cells_that_a_spreadsheet_would_run_as_formulas_are_quoted() {
        for hostile in ["=HYPERLINK(\"http://x\",\"y\")", "+1", "-2+3", "@SUM(1)", "\tx", "\rx"] {
            assert_eq!(csv_cell(hostile), format!("'{hostile}"), "{hostile:?}");
        }
        for plain in ["Kari", "12", "a=b", "", " =1", "'quoted", "kari@example.no"] {
            assert!(matches!(csv_cell(plain), Cow::Borrowed(c) if c == plain), "{plain:?}");
        }
    }
}
