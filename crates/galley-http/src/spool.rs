//! Multipart file parts written to temporary files as they arrive, so that an upload never
//! sits whole in memory. Both front-ends read their multipart bodies their own way (their
//! limits and error pages differ) and hand each file part to [`spool_file`].

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use galley_core::files::Upload;
use std::path::Path;
use tokio::io::AsyncWriteExt;

/// Why a file part could not be spooled. `E` is the multipart reader's error.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError<E: std::error::Error + 'static> {
    /// The body could not be read (cut off, malformed, over the reader's own limits).
    #[error("reading the upload failed: {0}")]
    Read(#[source] E),
    /// The part is larger than the caller allowed.
    #[error("the upload is larger than {0} bytes")]
    TooLarge(u64),
    #[error("spooling an upload failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes the file part `chunks` (form field `key`, client file name `original_name`) to a
/// new temporary file in `dir`, keeping its first bytes for type sniffing. More than `max`
/// bytes is [`SpoolError::TooLarge`]. The file is removed when the [`Upload`] is dropped.
pub async fn spool_file<S, E>(
    dir: &Path,
    key: String,
    original_name: String,
    chunks: S,
    max: u64,
) -> Result<Upload, SpoolError<E>>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::error::Error + 'static,
{
    const SNIFF_LEN: usize = galley_files::mime::SNIFF_LEN;
    let tmp = tempfile::Builder::new()
        .prefix("upload-")
        .tempfile_in(dir)?;
    let mut out = tokio::fs::File::from_std(tmp.reopen()?);
    let mut head = Vec::new();
    let mut size: u64 = 0;
    let mut chunks = std::pin::pin!(chunks);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(SpoolError::Read)?;
        size += chunk.len() as u64;
        if size > max {
            return Err(SpoolError::TooLarge(max));
        }
        if head.len() < SNIFF_LEN {
            let take = (SNIFF_LEN - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    Ok(Upload {
        key,
        original_name,
        temp: tmp.into_temp_path(),
        size,
        head,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Chunk = Result<Bytes, std::io::Error>;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Chunk> {
        futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<Chunk>>(),
        )
    }

    #[tokio::test]
    async fn spools_to_disk_and_keeps_the_head() {
        let dir = tempfile::tempdir().expect("dir");
        let big = vec![7u8; SNIFF + 10].leak() as &'static [u8];
        let up = spool_file(
            dir.path(),
            "f".into(),
            "a.bin".into(),
            chunks(&[b"ab", big]),
            u64::MAX,
        )
        .await
        .expect("spool");
        assert_eq!(up.size, (SNIFF + 12) as u64);
        assert_eq!(up.head.len(), SNIFF);
        assert_eq!(&up.head[..3], &[b'a', b'b', 7]);
        assert_eq!(std::fs::read(&up.temp).expect("read").len(), SNIFF + 12);
        let path = up.temp.to_path_buf();
        drop(up);
        assert!(!path.exists(), "removed with the upload");
    }

    #[tokio::test]
    async fn refuses_more_than_allowed_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let r = spool_file(
            dir.path(),
            "f".into(),
            "a".into(),
            chunks(&[b"abc", b"def"]),
            5,
        )
        .await;
        assert!(matches!(r, Err(SpoolError::TooLarge(5))), "{r:?}");
        let bad = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"x")),
            Err(std::io::Error::other("cut")),
        ]);
        let r = spool_file(dir.path(), "f".into(), "a".into(), bad, 100).await;
        assert!(matches!(r, Err(SpoolError::Read(_))), "{r:?}");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
    }

    const SNIFF: usize = galley_files::mime::SNIFF_LEN;
}
