//! No file name a vendor sends leaves its folder in a bundle.
#![no_main]

use dsr_connector::safe_file_name;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|name: &str| {
    let safe = safe_file_name(name);
    assert!(!safe.is_empty());
    assert!(!safe.contains(['/', '\\', '\0']), "{safe:?}");
    assert!(!safe.chars().any(char::is_control), "{safe:?}");
    assert!(safe != "." && safe != "..", "{safe:?}");
    assert!(!safe.starts_with(['.', ' ']), "{safe:?}");
    assert!(safe.chars().count() <= 101, "{safe:?}");
});
