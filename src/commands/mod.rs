//! One module per group of commands.

pub mod admin;
pub mod bench;
pub mod delivery;
// The fake vendors it starts (dsr-fixtures) are only linked into builds with `demo`.
#[cfg(feature = "demo")]
pub mod demo;
pub mod doctor;
pub mod init;
pub mod plans;
pub mod requests;
pub mod token;
pub mod users;
pub mod verify;
pub mod worker;
pub mod workers;

use tokio::sync::watch;

/// A shutdown switch shared by the worker and the scheduler running in this process.
#[derive(Clone)]
pub struct Shutdown(watch::Sender<bool>);

impl Shutdown {
    pub fn new() -> Self {
        Shutdown(watch::channel(false).0)
    }

    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }

    pub fn signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}
