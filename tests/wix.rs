//! The Wix connector's tests that need the `dsr` binary or a deployment. The tests that
//! drive the connector directly are in `connectors/wix/tests/wix.rs`.

mod util;
