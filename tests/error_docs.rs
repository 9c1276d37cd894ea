//! `docs/errors.md` lists every error code an operator can see. This keeps the list honest
//! both ways: each code it names is asserted by some test (so a test produces it), and each
//! dsr-own code the connectors and core can produce is in the list.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The codes in the first column of the document's tables: `| `permanent:too_many_pages` |`.
fn documented() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("docs/errors.md")).expect("docs/errors.md exists");
    text.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(code, _)| code.to_string())
        .filter(|code| !code.contains('<'))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Test code: files under a `tests/` folder, and what follows `#[cfg(test)]` in the others.
fn test_code() -> String {
    let mut files = Vec::new();
    for dir in ["src", "jobs", "connectors", "fixtures", "tests"] {
        rust_files(&root().join(dir), &mut files);
    }
    let mut code = String::new();
    for file in files {
        if file.ends_with("tests/error_docs.rs") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let in_tests_dir = file.components().any(|c| c.as_os_str() == "tests");
        if in_tests_dir {
            code.push_str(&text);
        } else if let Some(at) = text.find("#[cfg(test)]") {
            code.push_str(&text[at..]);
        }
        code.push('\n');
    }
    code
}

#[test]
fn every_documented_code_is_produced_by_a_test() {
    let codes = documented();
    assert!(
        codes.len() >= 20,
        "docs/errors.md lists only {} codes: {codes:?}",
        codes.len()
    );
    let tests = test_code();
    let missing: Vec<&String> = codes
        .iter()
        .filter(|code| !tests.contains(&format!("\"{code}\"")))
        .collect();
    assert!(
        missing.is_empty(),
        "no test asserts these codes from docs/errors.md (write a test that produces each): {missing:?}"
    );
}

#[test]
fn every_code_dsr_writes_is_documented() {
    let codes = documented();
    let mut files = Vec::new();
    for dir in ["connectors", "jobs/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    // dsr's own codes are the literals given to the error constructors.
    let mut undocumented = BTreeSet::new();
    for file in files {
        if file.components().any(|c| c.as_os_str() == "tests") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (constructor, class) in [
            ("ConnectorError::retry_later(", "retry_later"),
            ("ConnectorError::permanent(", "permanent"),
            ("ConnectorError::reauthenticate(", "reauthenticate"),
        ] {
            for (i, _) in text.match_indices(constructor) {
                let args = &text[i + constructor.len()..];
                let Some(start) = args.find('"') else { continue };
                // The code is the first string literal, within the call's first two arguments.
                if args[..start].matches(',').count() > 1 {
                    continue;
                }
                let rest = &args[start + 1..];
                let Some(end) = rest.find('"') else { continue };
                let code = format!("{class}:{}", &rest[..end]);
                if !codes.contains(&code) {
                    undocumented.insert(format!("{code} ({})", file.display()));
                }
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "codes dsr writes that docs/errors.md does not list: {undocumented:?}"
    );
}
