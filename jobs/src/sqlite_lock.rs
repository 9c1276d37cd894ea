//! SQLite has no lock for schema migrations: two processes starting at once (a worker and
//! an `enqueue`) would both create the tables and one would fail. A lock file beside the
//! database serialises them.

use std::future::Future;
use std::path::Path;

/// Runs `work` while holding an exclusive lock on `<database>.lock`.
pub async fn while_locked<T>(database: &Path, work: impl Future<Output = T>) -> std::io::Result<T> {
    let lock_path = database.with_extension("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    let file = tokio::task::spawn_blocking(move || file.lock().map(|_| file))
        .await
        .map_err(std::io::Error::other)??;
    let out = work.await;
    let _ = file.unlock();
    Ok(out)
}
