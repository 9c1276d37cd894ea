//! Records flattened for spreadsheets: nested objects and arrays become dotted columns
//! (`info.name.first`, `emails.0.email`).

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
}
