//! A running `dsr serve`, for the tests of its HTTP routes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::Deployment;

/// A running `dsr serve` on a free port, killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    pub fn start(d: &Deployment, with_worker: bool) -> Server {
        let mut command = d.command();
        command.arg("serve");
        if with_worker {
            command.arg("--with-worker");
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dsr serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("read the first line");
        let base = first
            .trim()
            .strip_prefix("dsr serve listening on ")
            .unwrap_or_else(|| panic!("no address on the first line: {first:?}"))
            .to_string();
        Server { child, base }
    }

    /// Sends SIGTERM and waits for the process to end; its exit code.
    pub fn stop(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "dsr serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates an API token `name` with `scopes` (comma-separated); the token, printed once.
pub fn token(d: &Deployment, name: &str, scopes: &str) -> String {
    let (code, created) = d.dsr_json(&["token", "create", "--name", name, "--scope", scopes]);
    assert_eq!(code, 0, "{created}");
    created["token"]
        .as_str()
        .expect("the token is printed once")
        .to_string()
}
