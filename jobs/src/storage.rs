//! The export storage: where spools, bundles and confirmations live, through the
//! `object_store` crate. A local directory by default; an S3-compatible, Google Cloud Storage
//! or Azure Blob store (`[export] store = "s3://bucket/prefix"`) when several machines share
//! the work, so a task's spool written on one machine is read by `finalize` on another.
//!
//! Every write is all-or-nothing: small objects are one `put`, large ones a multipart upload
//! that becomes visible only when it completes (a local file is written under a staging name
//! and renamed), and a failed write is aborted, so no reader ever sees half an object.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
/// An object's key in the export storage.
pub use object_store::path::Path as Key;
use object_store::path::PathPart;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, ObjectStoreScheme, PutPayload};
use tokio::io::AsyncWriteExt;

/// Bytes buffered before a write turns into a multipart upload, and the size of each part
/// (S3's smallest part is 5 MiB). At most two parts are in flight per write.
const PART_SIZE: usize = 5 << 20;

/// A storage failure, naming the object and what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("export storage, {location}: {source}")]
pub struct StorageError {
    pub location: String,
    #[source]
    pub source: std::io::Error,
}

impl StorageError {
    pub fn kind(&self) -> std::io::ErrorKind {
        self.source.kind()
    }
}

#[derive(Debug, Clone)]
enum Root {
    /// An absolute local directory: locations shown to operators are file paths.
    Local(PathBuf),
    /// A store URL without a trailing slash: locations are URLs.
    Remote(String),
}

/// The export storage. Cheap to clone.
#[derive(Clone)]
pub struct ExportStore {
    store: Arc<dyn ObjectStore>,
    root: Root,
}

impl std::fmt::Debug for ExportStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.root {
            Root::Local(dir) => write!(f, "ExportStore({})", dir.display()),
            Root::Remote(url) => write!(f, "ExportStore({url})"),
        }
    }
}

/// Builds an object key from `/`-separated parts; each part is encoded on its own, so a
/// name can never climb out of its folder.
pub fn key(parts: &str) -> Key {
    Key::from_iter(parts.split('/').filter(|p| !p.is_empty()).map(PathPart::from))
}

/// An `[export] store` or `store_options` that cannot work, naming the key to change.
#[derive(Debug, thiserror::Error)]
pub enum StoreConfigError {
    #[error("export.store: {url:?} is not a URL: {reason}")]
    NotAUrl { url: String, reason: String },
    #[error("export.store: {url:?} is not a store URL (s3://, gs://, az://, file:///): {reason}")]
    NotAStore { url: String, reason: String },
    #[error("export.store: {url:?} is not a local path")]
    NotLocal { url: String },
    #[error(
        "export.store_options: {option:?} is not an option of the store at {url:?}; see the object_store documentation for its configuration keys"
    )]
    UnknownOption { option: String, url: String },
    #[error("export.store: cannot open {url:?}: {reason}")]
    Open { url: String, reason: String },
    #[error("export.store: {0}")]
    Local(#[from] StorageError),
}

impl ExportStore {
    /// A local directory, created when missing. Files are synced before a write returns.
    pub fn local(dir: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let dir = dir.into();
        let fail = |source: std::io::Error| StorageError {
            location: dir.display().to_string(),
            source,
        };
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).map_err(fail)?;
        let dir = std::fs::canonicalize(&dir).map_err(fail)?;
        let store = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| fail(e.into()))?
            .with_automatic_cleanup(true)
            .with_fsync(true);
        Ok(ExportStore {
            store: Arc::new(store),
            root: Root::Local(dir),
        })
    }

    /// A store named by URL (`s3://`, `gs://`, `az://`, `abfss://`, `file:///`, `memory:///`)
    /// with its options (credentials, region, endpoint…). An option the store does not know is
    /// an error rather than silently ignored.
    pub fn from_url(url: &str, options: &BTreeMap<String, String>) -> Result<Self, StoreConfigError> {
        // Errors name the store without any password in its URL.
        let url_text = || crate::queue::redacted(url);
        let parsed = url::Url::parse(url).map_err(|e| StoreConfigError::NotAUrl {
            url: url_text(),
            reason: e.to_string(),
        })?;
        let (scheme, prefix) = ObjectStoreScheme::parse(&parsed).map_err(|e| StoreConfigError::NotAStore {
            url: url_text(),
            reason: e.to_string(),
        })?;
        if scheme == ObjectStoreScheme::Local {
            let dir = parsed
                .to_file_path()
                .map_err(|_| StoreConfigError::NotLocal { url: url_text() })?;
            return Ok(ExportStore::local(dir)?);
        }
        // The cloud stores speak TLS through reqwest with rustls on ring.
        dsr_connector::http::install_crypto_provider();
        for name in options.keys() {
            let known = match scheme {
                ObjectStoreScheme::AmazonS3 => name.parse::<object_store::aws::AmazonS3ConfigKey>().is_ok(),
                ObjectStoreScheme::GoogleCloudStorage => name.parse::<object_store::gcp::GoogleConfigKey>().is_ok(),
                ObjectStoreScheme::MicrosoftAzure => name.parse::<object_store::azure::AzureConfigKey>().is_ok(),
                _ => false,
            };
            if !known {
                return Err(StoreConfigError::UnknownOption {
                    option: name.clone(),
                    url: url_text(),
                });
            }
        }
        let (store, _) = object_store::parse_url_opts(&parsed, options.iter().map(|(k, v)| (k.clone(), v.clone())))
            .map_err(|e| StoreConfigError::Open {
                url: url_text(),
                reason: e.to_string(),
            })?;
        let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
            Arc::from(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        Ok(ExportStore {
            store,
            // Locations are shown and stored: no password in them.
            root: Root::Remote(crate::queue::redacted(url).trim_end_matches('/').to_string()),
        })
    }

    /// An in-memory store, for tests and benchmarks.
    pub fn in_memory() -> Self {
        ExportStore {
            store: Arc::new(object_store::memory::InMemory::new()),
            root: Root::Remote("memory://".into()),
        }
    }

    /// Where an object is, as an operator would look for it: a file path for a local
    /// directory, a URL otherwise.
    pub fn locate(&self, key: &Key) -> String {
        match &self.root {
            Root::Local(dir) if key.as_ref().is_empty() => dir.display().to_string(),
            Root::Remote(url) if key.as_ref().is_empty() => url.clone(),
            Root::Local(dir) => dir.join(key.as_ref()).display().to_string(),
            Root::Remote(url) => format!("{url}/{key}"),
        }
    }

    /// The key an operator-facing location (from [`Self::locate`]) stands for, if it is in
    /// this store.
    pub fn key_of(&self, location: &str) -> Option<Key> {
        let rest = match &self.root {
            Root::Local(dir) => std::path::Path::new(location)
                .strip_prefix(dir)
                .ok()?
                .to_str()?
                .to_string(),
            Root::Remote(url) => location.strip_prefix(url.as_str())?.trim_start_matches('/').to_string(),
        };
        Key::parse(rest).ok()
    }

    /// The directory behind a local store.
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        match &self.root {
            Root::Local(dir) => Some(dir),
            Root::Remote(_) => None,
        }
    }

    fn fail(&self, key: &Key) -> impl Fn(object_store::Error) -> StorageError + '_ {
        let location = self.locate(key);
        move |e| StorageError {
            location: location.clone(),
            source: e.into(),
        }
    }

    /// Starts an all-or-nothing streamed write.
    pub fn writer(&self, key: Key) -> ObjectWriter {
        ObjectWriter {
            location: self.locate(&key),
            inner: BufWriter::with_capacity(self.store.clone(), key.clone(), PART_SIZE).with_max_concurrency(2),
            key,
            store: self.clone(),
        }
    }

    /// Writes a small object whole.
    pub async fn put(&self, key: &Key, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.store
            .put(key, PutPayload::from(bytes))
            .await
            .map_err(self.fail(key))?;
        self.restrict(key).await
    }

    /// Reads a small object whole.
    pub async fn get(&self, key: &Key) -> Result<Bytes, StorageError> {
        let got = self.store.get(key).await.map_err(self.fail(key))?;
        got.bytes().await.map_err(self.fail(key))
    }

    /// An object's size in bytes.
    pub async fn size(&self, key: &Key) -> Result<u64, StorageError> {
        Ok(self.store.head(key).await.map_err(self.fail(key))?.size)
    }

    /// Streams an object.
    pub async fn reader(&self, key: &Key) -> Result<impl tokio::io::AsyncRead + Send + Unpin + use<>, StorageError> {
        let got = self.store.get(key).await.map_err(self.fail(key))?;
        Ok(tokio_util::io::StreamReader::new(
            got.into_stream().map_err(std::io::Error::from),
        ))
    }

    /// Streams bytes `range` of an object (an HTTP `Range` request).
    pub async fn range_reader(
        &self,
        key: &Key,
        range: std::ops::Range<u64>,
    ) -> Result<impl tokio::io::AsyncRead + Send + Unpin + use<>, StorageError> {
        let options = object_store::GetOptions {
            range: Some(object_store::GetRange::Bounded(range)),
            ..Default::default()
        };
        let got = self.store.get_opts(key, options).await.map_err(self.fail(key))?;
        Ok(tokio_util::io::StreamReader::new(
            got.into_stream().map_err(std::io::Error::from),
        ))
    }

    /// Reads an object from a blocking thread. A local store's file is read directly (the
    /// object_store stream hands out 8 KiB chunks, each a trip through the runtime); a
    /// remote object streams through `handle`.
    pub fn open_sync(
        &self,
        key: &Key,
        handle: &tokio::runtime::Handle,
    ) -> Result<Box<dyn std::io::Read + Send>, StorageError> {
        if let Root::Local(dir) = &self.root {
            let path = dir.join(key.as_ref());
            return std::fs::File::open(&path)
                .map(|f| Box::new(f) as Box<dyn std::io::Read + Send>)
                .map_err(|source| StorageError {
                    location: path.display().to_string(),
                    source,
                });
        }
        let reader = handle.block_on(self.reader(key))?;
        Ok(Box::new(tokio_util::io::SyncIoBridge::new_with_handle(
            reader,
            handle.clone(),
        )))
    }

    /// Deletes one object; a missing one counts as deleted.
    pub async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.fail(key)(e)),
        }
    }

    /// Deletes every object under `prefix`; returns how many.
    pub async fn delete_prefix(&self, prefix: &Key) -> Result<u64, StorageError> {
        let listed = self.store.list(Some(prefix)).map_ok(|m| m.location).boxed();
        let deleted: Vec<Key> = self
            .store
            .delete_stream(listed)
            .try_collect()
            .await
            .map_err(self.fail(prefix))?;
        Ok(deleted.len() as u64)
    }

    /// Lists the objects under `prefix` with their last-modified time.
    pub async fn list(&self, prefix: Option<&Key>) -> Result<Vec<(Key, chrono::DateTime<chrono::Utc>)>, StorageError> {
        let root = Key::default();
        self.store
            .list(prefix)
            .map_ok(|m| (m.location, m.last_modified))
            .try_collect()
            .await
            .map_err(self.fail(prefix.unwrap_or(&root)))
    }

    /// Removes the staging files (`<name>#<n>`) that a local write killed mid-way left
    /// behind, last modified before `cutoff`; listing skips them, so nothing else ever would.
    /// Returns how many. A remote store has none (its multipart uploads are aborted or
    /// expire by the bucket's own rules).
    pub async fn remove_staging_leftovers(&self, cutoff: std::time::SystemTime) -> Result<usize, StorageError> {
        let Root::Local(dir) = &self.root else {
            return Ok(0);
        };
        let dir = dir.clone();
        let location = dir.display().to_string();
        tokio::task::spawn_blocking(move || remove_staged(&dir, cutoff))
            .await
            .map_err(|e| StorageError {
                location,
                source: std::io::Error::other(e),
            })?
    }

    /// Local files hold personal data: readable by their owner only. Remote stores keep
    /// their own access control.
    async fn restrict(&self, key: &Key) -> Result<(), StorageError> {
        #[cfg(unix)]
        if let Root::Local(dir) = &self.root {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.join(key.as_ref());
            tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .await
                .map_err(|source| StorageError {
                    location: path.display().to_string(),
                    source,
                })?;
        }
        Ok(())
    }
}

/// Whether `name` is object_store's staging name for a file being written: `<name>#<n>`,
/// digits after the first `#` (the rule its listing uses to skip them).
fn is_staging_name(name: &str) -> bool {
    match name.split_once('#') {
        Some((_, suffix)) => !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// Walks `root` (not following symlinks) and removes staging files older than `cutoff`.
fn remove_staged(root: &std::path::Path, cutoff: std::time::SystemTime) -> Result<usize, StorageError> {
    let fail = |path: &std::path::Path| {
        let location = path.display().to_string();
        move |source: std::io::Error| StorageError {
            location: location.clone(),
            source,
        }
    };
    let mut removed = 0;
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            // Deleted meanwhile (a spool removed by finalize).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(fail(&folder)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(fail(&folder))?;
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                folders.push(path);
                continue;
            }
            if !kind.is_file() || !entry.file_name().to_str().is_some_and(is_staging_name) {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified < cutoff);
            if old {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(fail(&path)(e)),
                }
            }
        }
    }
    Ok(removed)
}

/// A streamed write that becomes visible only on [`ObjectWriter::commit`].
pub struct ObjectWriter {
    inner: BufWriter,
    key: Key,
    location: String,
    store: ExportStore,
}

impl ObjectWriter {
    pub fn location(&self) -> &str {
        &self.location
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    fn fail(&self, source: std::io::Error) -> StorageError {
        StorageError {
            location: self.location.clone(),
            source,
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        match self.inner.write_all(bytes).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Completes the write; on failure nothing is left behind (a failed put or completion
    /// removes its staging file; an S3 upload never completed stays invisible).
    pub async fn commit(mut self) -> Result<Key, StorageError> {
        if let Err(e) = self.inner.shutdown().await {
            return Err(self.fail(e));
        }
        self.store.restrict(&self.key).await?;
        Ok(self.key)
    }

    /// Gives the write up; nothing becomes visible.
    pub async fn abort(mut self) {
        let _ = self.inner.abort().await;
    }

    /// A synchronous writer for a blocking thread (the ZIP writer). Dropping it without
    /// [`SyncObjectWriter::commit`] leaves nothing visible.
    pub fn into_sync(self, handle: tokio::runtime::Handle) -> SyncObjectWriter {
        SyncObjectWriter {
            inner: tokio_util::io::SyncIoBridge::new_with_handle(self.inner, handle.clone()),
            handle,
            key: self.key,
            location: self.location,
            store: self.store,
        }
    }
}

/// [`ObjectWriter`] as `std::io::Write`, for code on a blocking thread.
pub struct SyncObjectWriter {
    inner: tokio_util::io::SyncIoBridge<BufWriter>,
    handle: tokio::runtime::Handle,
    key: Key,
    location: String,
    store: ExportStore,
}

impl SyncObjectWriter {
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Completes the write; on failure nothing is left behind.
    pub fn commit(mut self) -> Result<Key, StorageError> {
        if let Err(source) = self.inner.shutdown() {
            return Err(StorageError {
                location: self.location,
                source,
            });
        }
        self.handle.block_on(self.store.restrict(&self.key))?;
        Ok(self.key)
    }
}

impl std::io::Write for SyncObjectWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_is_invisible_until_committed_and_gone_when_aborted() {
        let dir = tempfile::tempdir().unwrap();
        let store = ExportStore::local(dir.path()).unwrap();
        let k = key("spool/r1/wix/attempt-1.jsonl");
        let mut w = store.writer(k.clone());
        w.write(b"{\"a\":1}\n").await.unwrap();
        assert!(store.size(&k).await.is_err(), "nothing visible before commit");
        w.commit().await.unwrap();
        assert_eq!(&store.get(&k).await.unwrap()[..], b"{\"a\":1}\n");
        let path = store.locate(&k);
        assert!(path.ends_with("spool/r1/wix/attempt-1.jsonl"), "{path}");
        assert_eq!(store.key_of(&path), Some(k.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }

        let other = key("spool/r1/wix/attempt-2.jsonl");
        let mut w = store.writer(other.clone());
        w.write(b"half").await.unwrap();
        w.abort().await;
        assert!(store.size(&other).await.is_err());
        assert_eq!(store.delete_prefix(&key("spool/r1")).await.unwrap(), 1);
        assert_eq!(store.delete_prefix(&key("spool/never-written")).await.unwrap(), 0);
        assert!(store.list(None).await.unwrap().is_empty());
    }

    #[test]
    fn key_parts_cannot_climb_out_of_their_folder() {
        let k = key("spool/r1/../../etc/passwd");
        assert!(k.as_ref().starts_with("spool/r1/"), "{k}");
        assert!(!k.parts().any(|p| p.as_ref() == ".."));
    }

    #[test]
    fn store_urls_are_checked_before_use() {
        let none = BTreeMap::new();
        assert!(matches!(
            ExportStore::from_url("not a url", &none),
            Err(StoreConfigError::NotAUrl { .. })
        ));
        let mut bad = BTreeMap::new();
        bad.insert("aws_secret_acces_key".to_string(), "x".to_string());
        let err = ExportStore::from_url("s3://bucket/dsr", &bad).unwrap_err();
        assert!(matches!(&err, StoreConfigError::UnknownOption { option, .. } if option == "aws_secret_acces_key"));
        assert!(
            err.to_string()
                .starts_with("export.store_options: \"aws_secret_acces_key\""),
            "{err}"
        );
        let mut good = BTreeMap::new();
        good.insert("aws_region".to_string(), "eu-north-1".to_string());
        let store = ExportStore::from_url("s3://bucket/dsr/", &good).unwrap();
        assert_eq!(store.locate(&key("dsr-r1.zip")), "s3://bucket/dsr/dsr-r1.zip");
        assert_eq!(store.key_of("s3://bucket/dsr/dsr-r1.zip"), Some(key("dsr-r1.zip")));
    }
}
