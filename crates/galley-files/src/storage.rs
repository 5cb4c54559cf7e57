//! The object store behind record files: local disk (default) or S3-compatible, through
//! object_store. Keys are built from path segments, so no name can climb out of its
//! record's folder.

use crate::FilesError;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::{Path as Key, PathPart};
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncReadExt;

/// S3-compatible storage settings (PocketBase's `s3` settings).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    pub endpoint: String,
    pub access_key: String,
    pub secret: String,
    pub force_path_style: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    Local(PathBuf),
    S3(S3Config),
}

/// Size and modification time of a stored object.
#[derive(Debug, Clone, Copy)]
pub struct ObjectMeta {
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

/// Files up to this size are uploaded in one request; larger ones in parts of this size,
/// read from disk as they go, so an upload never sits whole in memory.
const PART_SIZE: usize = 8 << 20;
/// Parts in flight at once during a multipart upload.
const PARTS_IN_FLIGHT: usize = 2;

#[derive(Clone)]
pub struct Storage {
    inner: Arc<dyn ObjectStore>,
    backend: Backend,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("backend", &self.describe())
            .finish()
    }
}

fn backend_err(e: object_store::Error) -> FilesError {
    match e {
        object_store::Error::NotFound { .. } => FilesError::NotFound,
        other => FilesError::Backend(other.to_string()),
    }
}

/// `a/b/c` from segments; each segment is percent-encoded as needed (`..`, `/`), so a
/// segment is always exactly one level.
pub fn key(parts: &[&str]) -> Key {
    Key::from_iter(parts.iter().map(|p| PathPart::from(*p)))
}

/// Where a record's files live: `COLLECTION_ID/RECORD_ID`.
pub fn record_prefix(collection_id: &str, record_id: &str) -> Key {
    key(&[collection_id, record_id])
}

pub fn file_key(collection_id: &str, record_id: &str, name: &str) -> Key {
    key(&[collection_id, record_id, name])
}

/// `COLLECTION_ID/RECORD_ID/thumbs_NAME/SIZE_NAME`, PocketBase's layout.
pub fn thumb_key(collection_id: &str, record_id: &str, name: &str, size: &str) -> Key {
    key(&[
        collection_id,
        record_id,
        &format!("thumbs_{name}"),
        &format!("{size}_{name}"),
    ])
}

pub fn thumbs_prefix(collection_id: &str, record_id: &str, name: &str) -> Key {
    key(&[collection_id, record_id, &format!("thumbs_{name}")])
}

impl Storage {
    pub fn open(backend: &Backend) -> Result<Storage, FilesError> {
        let inner: Arc<dyn ObjectStore> = match backend {
            Backend::Local(root) => {
                std::fs::create_dir_all(root).map_err(|e| {
                    FilesError::Config(format!(
                        "cannot create the storage folder {}: {e}",
                        root.display()
                    ))
                })?;
                Arc::new(
                    object_store::local::LocalFileSystem::new_with_prefix(root)
                        .map_err(|e| FilesError::Config(e.to_string()))?
                        .with_automatic_cleanup(true),
                )
            }
            Backend::S3(c) => open_s3(c)?,
        };
        Ok(Storage {
            inner,
            backend: backend.clone(),
        })
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Local(p) => format!("local:{}", p.display()),
            Backend::S3(c) => format!("s3:{}/{}", c.endpoint, c.bucket),
        }
    }

    pub async fn put_bytes(&self, key: &Key, data: Bytes) -> Result<(), FilesError> {
        self.inner
            .put(key, PutPayload::from_bytes(data))
            .await
            .map_err(backend_err)?;
        Ok(())
    }

    /// Uploads a local file, streaming it in parts when it is large.
    pub async fn put_file(&self, key: &Key, path: &Path) -> Result<u64, FilesError> {
        let mut file = tokio::fs::File::open(path).await?;
        let size = file.metadata().await?.len();
        if size <= PART_SIZE as u64 {
            let mut buf = Vec::with_capacity(size as usize);
            file.read_to_end(&mut buf).await?;
            self.put_bytes(key, Bytes::from(buf)).await?;
            return Ok(size);
        }
        let upload = self.inner.put_multipart(key).await.map_err(backend_err)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; 1 << 20];
        let result: Result<(), FilesError> = async {
            loop {
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(backend_err)?;
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                writer.write(&buf[..n]);
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                writer.finish().await.map_err(backend_err)?;
                Ok(size)
            }
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// `None` when the object does not exist.
    pub async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>, FilesError> {
        match self.inner.head(key).await {
            Ok(m) => Ok(Some(ObjectMeta {
                size: m.size,
                last_modified: m.last_modified,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(backend_err(e)),
        }
    }

    /// Reads a range into memory (heads for sniffing, originals for thumbnails).
    pub async fn read(&self, key: &Key, range: Range<u64>) -> Result<Bytes, FilesError> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        self.inner.get_range(key, range).await.map_err(backend_err)
    }

    /// Streams a range of an object.
    pub async fn stream(
        &self,
        key: &Key,
        range: Range<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes, FilesError>>, FilesError> {
        if range.is_empty() {
            return Ok(futures_util::stream::empty().boxed());
        }
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..Default::default()
        };
        let r = self.inner.get_opts(key, opts).await.map_err(backend_err)?;
        Ok(r.into_stream().map_err(backend_err).boxed())
    }

    /// Deletes one object; a missing one is not an error.
    pub async fn delete(&self, key: &Key) -> Result<(), FilesError> {
        match self.inner.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend_err(e)),
        }
    }

    /// Every key under `prefix` (none when the prefix does not exist).
    async fn keys_under(&self, prefix: &Key) -> Result<Vec<Key>, FilesError> {
        self.inner
            .list(Some(prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(vec![]),
                e => Err(backend_err(e)),
            })
    }

    /// Deletes every object under `prefix`.
    pub async fn delete_prefix(&self, prefix: &Key) -> Result<(), FilesError> {
        for k in self.keys_under(prefix).await? {
            self.delete(&k).await?;
        }
        Ok(())
    }

    /// Keys under `prefix`, sorted (tests and tools).
    pub async fn list(&self, prefix: &Key) -> Result<Vec<String>, FilesError> {
        let mut keys: Vec<String> = self
            .keys_under(prefix)
            .await?
            .iter()
            .map(ToString::to_string)
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Writes, reads back and deletes a probe object: `POST /api/settings/test/s3`.
    pub async fn check(&self) -> Result<(), FilesError> {
        let k = key(&[".galley_probe", &crate::names::normalize("probe", "")]);
        self.put_bytes(&k, Bytes::from_static(b"ok")).await?;
        let back = self.read(&k, 0..2).await?;
        self.delete(&k).await?;
        if back.as_ref() != b"ok" {
            return Err(FilesError::Backend(
                "the probe object read back differently".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(feature = "s3")]
fn open_s3(c: &S3Config) -> Result<Arc<dyn ObjectStore>, FilesError> {
    use object_store::aws::AmazonS3Builder;
    if c.bucket.is_empty() {
        return Err(FilesError::Config("the S3 bucket is not set".into()));
    }
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(&c.bucket)
        .with_region(if c.region.is_empty() {
            "us-east-1"
        } else {
            &c.region
        })
        .with_access_key_id(&c.access_key)
        .with_secret_access_key(&c.secret)
        .with_virtual_hosted_style_request(!c.force_path_style)
        .with_client_options(
            object_store::ClientOptions::new()
                .with_allow_http(true)
                .with_timeout(std::time::Duration::from_secs(60))
                .with_connect_timeout(std::time::Duration::from_secs(10)),
        );
    if !c.endpoint.is_empty() {
        b = b.with_endpoint(&c.endpoint);
    }
    Ok(Arc::new(
        b.build().map_err(|e| FilesError::Config(e.to_string()))?,
    ))
}

#[cfg(not(feature = "s3"))]
fn open_s3(_: &S3Config) -> Result<Arc<dyn ObjectStore>, FilesError> {
    Err(FilesError::Config(
        "this build of Galley has no S3 support (feature `s3`)".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_segment_per_part() {
        assert_eq!(file_key("c1", "r1", "a.png").to_string(), "c1/r1/a.png");
        assert_eq!(
            thumb_key("c1", "r1", "a.png", "10x10").to_string(),
            "c1/r1/thumbs_a.png/10x10_a.png"
        );
        let k = file_key("c1", "..", "../../etc/passwd").to_string();
        assert!(!k.split('/').any(|s| s == ".."), "{k}");
        assert_eq!(k.split('/').count(), 3, "{k}");
    }

    #[tokio::test]
    async fn local_put_stream_delete() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Storage::open(&Backend::Local(dir.path().join("storage"))).expect("open");
        let src = dir.path().join("src.bin");
        let data: Vec<u8> = (0..(PART_SIZE * 2 + 123))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&src, &data).expect("write");
        let k = file_key("c", "r", "big.bin");
        assert_eq!(s.put_file(&k, &src).await.expect("put"), data.len() as u64);
        let meta = s.head(&k).await.expect("head").expect("exists");
        assert_eq!(meta.size, data.len() as u64);
        assert_eq!(
            s.read(&k, 10..20).await.expect("read").as_ref(),
            &data[10..20]
        );
        let streamed: Vec<Bytes> = s
            .stream(&k, 5..(data.len() as u64))
            .await
            .expect("stream")
            .try_collect()
            .await
            .expect("chunks");
        assert_eq!(streamed.concat(), &data[5..]);
        s.put_bytes(
            &thumb_key("c", "r", "big.bin", "1x1"),
            Bytes::from_static(b"t"),
        )
        .await
        .expect("thumb");
        s.delete_prefix(&record_prefix("c", "r"))
            .await
            .expect("delete");
        assert!(s.head(&k).await.expect("head").is_none());
        assert!(s
            .list(&record_prefix("c", "r"))
            .await
            .expect("list")
            .is_empty());
        // Deleting what is already gone is fine.
        s.delete(&k).await.expect("idempotent");
        s.check().await.expect("probe");
    }
}
