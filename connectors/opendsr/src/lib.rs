//! OpenDSR 2.0 (https://github.com/opengdpr/OpenDSR): the protocol's documents
//! ([`protocol`]) and their signatures ([`signing`]), shared by `dsr serve`'s OpenDSR routes
//! (dsr as the processor a controller submits to) and the connector for processors that
//! speak OpenDSR (dsr as the controller). `docs/opendsr.md` names the version followed and
//! where dsr reads the specification one way rather than another.

pub mod client;
pub mod config;
pub mod connector;
pub mod protocol;
pub mod signing;

pub use client::CallbackRefusal;
pub use config::ProcessorConfig;
pub use connector::OpenDsrConnector;
pub use signing::{CertificateError, Pin, SignatureError, SigningIdentity, Trust};
