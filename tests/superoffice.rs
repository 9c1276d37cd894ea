//! The SuperOffice connector's own tests (access and every change, against the fake) live in
//! `connectors/superoffice/tests/superoffice.rs`; tests of the `dsr` binary with SuperOffice go here.

mod util;
