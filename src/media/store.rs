//! Where attachment bytes live: an [`ObjectStore`] opened from a URL, holding each content
//! once under its SHA-256 (`blobs/ab/abcdef…`). Uploads are written to `staging/` first,
//! hashed on the way, and moved to their content address once the database knows the blob.

use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

/// The attachment store; cheap to clone.
#[derive(Clone)]
pub struct MediaStore {
    store: Arc<dyn ObjectStore>,
    /// What it is, for the start-up log line (no credentials: those come from the
    /// environment).
    described: String,
}

/// An upload being written to `staging/`, not yet at its content address.
pub struct Staged {
    pub(super) location: Path,
    pub(super) writer: WriteMultipart,
}

/// A staged upload whose bytes are all written.
pub struct Written {
    location: Path,
}

/// The bytes of a blob (or a range of them) as they stream from the store.
pub struct BlobRead {
    /// The range of the blob these bytes are.
    pub range: std::ops::Range<u64>,
    /// The blob's whole size.
    pub size: u64,
    pub bytes: BoxStream<'static, Result<Bytes, object_store::Error>>,
}

impl MediaStore {
    /// Opens the store a URL names: `s3://bucket[/prefix][?key=value&…]` (credentials,
    /// region and endpoint from the usual `AWS_*` variables, so MinIO or any S3-compatible
    /// server works with `AWS_ENDPOINT_URL`; the query may set any of object_store's S3
    /// options too, e.g. `endpoint`, `region`, `aws_allow_http`), or `file:///dir` / a plain
    /// directory path (created when missing).
    pub fn open(url: &str) -> Result<Self, String> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("`{url}` names no bucket"));
            }
            // rustls is built without a default crypto provider (see Cargo.toml): ring's.
            // Installing it twice (a second server in one process) is harmless. ring has
            // no post-quantum key exchange (hence deprecated); aws-lc-rs, which has, is
            // minutes of cmake and C per build here.
            #[allow(deprecated)]
            let _ = rustls::crypto::ring::default_provider().install_default();
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
                let key: AmazonS3ConfigKey = key
                    .parse()
                    .map_err(|_| format!("S3 store: unknown option `{key}`"))?;
                builder = builder.with_config(key, value);
            }
            // The URL may hold credentials: errors name the bucket only.
            let s3 = builder
                .build()
                .map_err(|e| format!("S3 store for bucket `{bucket}`: {e}"))?;
            let prefix = prefix.trim_matches('/');
            let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix))
            };
            return Ok(Self {
                store,
                described: format!("s3://{bucket}/{prefix}"),
            });
        }
        let dir = url.strip_prefix("file://").unwrap_or(url);
        Self::local(FsPath::new(dir))
    }

    /// The local filesystem store in `dir`.
    pub fn local(dir: &FsPath) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("media directory {}: {e}", dir.display()))?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| format!("media directory {}: {e}", dir.display()))?;
        Ok(Self {
            store: Arc::new(store),
            described: dir.display().to_string(),
        })
    }

    /// Where the store is, for logs.
    pub fn describe(&self) -> &str {
        &self.described
    }

    fn blob_path(sha256: &str) -> Path {
        let fanout = sha256.get(..2).unwrap_or("00");
        Path::from(format!("blobs/{fanout}/{sha256}"))
    }

    /// Starts writing an upload to a fresh staging name.
    pub async fn stage(&self) -> Result<Staged, object_store::Error> {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).map_err(|e| object_store::Error::Generic {
            store: "staging",
            source: Box::new(e),
        })?;
        let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let location = Path::from(format!("staging/{name}"));
        let upload = self.store.put_multipart(&location).await?;
        Ok(Staged {
            location,
            writer: WriteMultipart::new(upload),
        })
    }

    /// Finishes writing a staged upload.
    pub async fn finish(&self, staged: Staged) -> Result<Written, object_store::Error> {
        staged.writer.finish().await?;
        Ok(Written {
            location: staged.location,
        })
    }

    /// Drops a staged upload that was refused or failed (best effort: the sweeper's
    /// staging pass removes what is left).
    pub async fn abandon(&self, staged: Staged) {
        if let Err(e) = staged.writer.abort().await {
            tracing::debug!(error = %e, "abandoning a staged upload");
        }
    }

    /// Moves written bytes to their content address; when that content is stored
    /// already, the copy just written is dropped instead.
    pub async fn keep(&self, written: Written, sha256: &str) -> Result<(), object_store::Error> {
        let target = Self::blob_path(sha256);
        match self.store.head(&target).await {
            Ok(_) => self.store.delete(&written.location).await,
            Err(object_store::Error::NotFound { .. }) => {
                self.store.rename(&written.location, &target).await
            }
            Err(e) => Err(e),
        }
    }

    /// Stores small bytes (a thumbnail) at their content address.
    pub async fn put(&self, sha256: &str, bytes: Bytes) -> Result<(), object_store::Error> {
        self.store
            .put(&Self::blob_path(sha256), PutPayload::from_bytes(bytes))
            .await
            .map(|_| ())
    }

    /// Reads a whole blob into memory (for thumbnailing; the caller bounds its size).
    pub async fn read(&self, sha256: &str) -> Result<Bytes, object_store::Error> {
        self.store
            .get(&Self::blob_path(sha256))
            .await?
            .bytes()
            .await
    }

    /// Streams a blob, or the range of it asked for.
    pub async fn open_read(
        &self,
        sha256: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<BlobRead, object_store::Error> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = self
            .store
            .get_opts(&Self::blob_path(sha256), options)
            .await?;
        Ok(BlobRead {
            range: result.range.clone(),
            size: result.meta.size,
            bytes: result.into_stream(),
        })
    }

    /// Removes a blob; one already gone is not an error.
    pub async fn delete(&self, sha256: &str) -> Result<(), object_store::Error> {
        match self.store.delete(&Self::blob_path(sha256)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes staged uploads older than `before` (a crash or a dropped connection left
    /// them); how many.
    pub async fn sweep_staging(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize, object_store::Error> {
        use futures_util::TryStreamExt;
        let prefix = Path::from("staging");
        let old: Vec<Path> = self
            .store
            .list(Some(&prefix))
            .try_filter(|meta| std::future::ready(meta.last_modified < before))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        for location in &old {
            match self.store.delete(location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(old.len())
    }
}

#[cfg(test)]
mod tests {
    use super::MediaStore;

    /// An S3 store speaks TLS with ring's provider (rustls is built without a default
    /// one): a request to an endpoint that refuses the connection fails as a connection
    /// error, not for want of a crypto provider.
    #[tokio::test]
    async fn an_s3_store_over_https_has_its_tls_provider() {
        let opened = MediaStore::open(
            "s3://bucket/prefix?endpoint=https://127.0.0.1:9&region=us-east-1\
             &access_key_id=a&secret_access_key=b",
        );
        let Ok(store) = opened else {
            panic!("the S3 store did not open");
        };
        assert_eq!(store.describe(), "s3://bucket/prefix");
        let failed = store.read("00").await;
        let Err(e) = failed else {
            panic!("nothing listens there");
        };
        let text = format!("{e:?}").to_lowercase();
        assert!(!text.contains("provider"), "{text}");
    }

    #[test]
    fn a_store_url_with_an_unknown_option_is_refused() {
        let refused = MediaStore::open("s3://bucket?colour=blue");
        assert!(matches!(refused, Err(message) if message.contains("colour")));
    }
}
