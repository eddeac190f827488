//! Server-side copies: one CopyObject up to the threshold, a multipart copy
//! of `multipartcopychunksize` parts with bounded concurrency above it.

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::{StreamExt, TryStreamExt};

use super::Inner;
use super::config::{MAX_PART_SIZE, MIN_PART_SIZE};
use super::error::map_sdk_error;
use crate::storage::{Result, StorageError};

/// Byte ranges (inclusive start, exclusive end) splitting `size` bytes into
/// parts of `chunk` bytes. With `min_last`, the last range is merged into
/// the one before (or the two split evenly) when it is shorter than S3's
/// minimum part, so more parts can follow it.
pub(crate) fn copy_ranges(size: u64, chunk: u64, min_last: bool) -> Vec<(u64, u64)> {
    let chunk = chunk.clamp(MIN_PART_SIZE, MAX_PART_SIZE);
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < size {
        let end = (start + chunk).min(size);
        ranges.push((start, end));
        start = end;
    }
    if min_last && ranges.len() >= 2 {
        let (last_start, last_end) = ranges[ranges.len() - 1];
        if last_end - last_start < MIN_PART_SIZE {
            ranges.pop();
            let (prev_start, _) = ranges.pop().unwrap_or((0, 0));
            if last_end - prev_start <= MAX_PART_SIZE {
                ranges.push((prev_start, last_end));
            } else {
                let mid = prev_start + (last_end - prev_start) / 2;
                ranges.push((prev_start, mid));
                ranges.push((mid, last_end));
            }
        }
    }
    ranges
}

/// Percent-encodes `bucket/key` for the `x-amz-copy-source` header
/// (everything but unreserved characters and `/`).
pub(crate) fn copy_source(bucket: &str, key: &str) -> String {
    let mut out = String::with_capacity(bucket.len() + key.len() + 1);
    for b in bucket
        .bytes()
        .chain(std::iter::once(b'/'))
        .chain(key.bytes())
    {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Inner {
    /// Copies the object at `src_key` (of `size` bytes, version `etag`) to
    /// `dst_key`, server-side.
    pub(crate) async fn copy_object(
        &self,
        path: &str,
        src_key: &str,
        dst_key: &str,
        size: u64,
        etag: Option<&str>,
    ) -> Result<()> {
        if size <= self.cfg.multipartcopythresholdsize {
            let mut req = self
                .client
                .copy_object()
                .bucket(&self.bucket)
                .key(dst_key)
                .copy_source(copy_source(&self.bucket, src_key))
                .content_type(super::CONTENT_TYPE)
                .set_copy_source_if_match(etag.map(str::to_string));
            req = self.apply_copy_object_options(req);
            req.send()
                .await
                .map_err(|e| map_sdk_error(path, &self.bucket, e))?;
            return Ok(());
        }
        let upload_id = self.create_upload(path, dst_key).await?;
        let result = async {
            let parts = self
                .copy_parts(path, src_key, dst_key, &upload_id, 1, size, etag, false)
                .await?;
            self.complete_upload(path, dst_key, &upload_id, parts).await
        }
        .await;
        if result.is_err() {
            self.abort_upload(dst_key, &upload_id).await;
        }
        result
    }

    /// Adds parts `first_part..` to a multipart upload, copying `size` bytes
    /// of `src_key` with at most `multipartcopymaxconcurrency` copies at a
    /// time. With `more_follow`, every part is at least S3's minimum part.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn copy_parts(
        &self,
        path: &str,
        src_key: &str,
        dst_key: &str,
        upload_id: &str,
        first_part: i32,
        size: u64,
        etag: Option<&str>,
        more_follow: bool,
    ) -> Result<Vec<CompletedPart>> {
        let ranges = copy_ranges(size, self.cfg.multipartcopychunksize, more_follow);
        if ranges.len() + first_part as usize - 1 > super::config::MAX_PARTS {
            return Err(StorageError::Other(format!(
                "{path}: {size} bytes need more than {} parts of {} bytes; raise \
                 storage.s3.multipartcopychunksize",
                super::config::MAX_PARTS,
                self.cfg.multipartcopychunksize
            )));
        }
        let source = copy_source(&self.bucket, src_key);
        let concurrency = usize::try_from(self.cfg.multipartcopymaxconcurrency).unwrap_or(1);
        let mut parts: Vec<CompletedPart> = futures::stream::iter(ranges.into_iter().enumerate())
            .map(|(i, (start, end))| {
                let source = source.clone();
                let number = first_part + i as i32;
                async move {
                    let out = self
                        .client
                        .upload_part_copy()
                        .bucket(&self.bucket)
                        .key(dst_key)
                        .upload_id(upload_id)
                        .part_number(number)
                        .copy_source(source)
                        .copy_source_range(format!("bytes={}-{}", start, end - 1))
                        .set_copy_source_if_match(etag.map(str::to_string))
                        .send()
                        .await
                        .map_err(|e| map_sdk_error(path, &self.bucket, e))?;
                    let etag = out
                        .copy_part_result()
                        .and_then(|r| r.e_tag())
                        .ok_or_else(|| {
                            StorageError::Other(format!(
                                "{path}: S3 returned no ETag for copied part {number}"
                            ))
                        })?;
                    Ok::<_, StorageError>(
                        CompletedPart::builder()
                            .part_number(number)
                            .e_tag(etag)
                            .build(),
                    )
                }
            })
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        parts.sort_by_key(|p| p.part_number());
        Ok(parts)
    }

    /// Completes a multipart upload with `parts` (in order).
    pub(crate) async fn complete_upload(
        &self,
        path: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<()> {
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| map_sdk_error(path, &self.bucket, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn ranges_cover_everything() {
        assert_eq!(copy_ranges(0, 32 * MIB, true), vec![]);
        assert_eq!(copy_ranges(10, 32 * MIB, true), vec![(0, 10)]);
        assert_eq!(
            copy_ranges(70 * MIB, 32 * MIB, false),
            vec![(0, 32 * MIB), (32 * MIB, 64 * MIB), (64 * MIB, 70 * MIB)]
        );
        // A 1 MiB tail would be an undersized middle part: merged.
        assert_eq!(
            copy_ranges(65 * MIB, 32 * MIB, true),
            vec![(0, 32 * MIB), (32 * MIB, 65 * MIB)]
        );
        assert_eq!(
            copy_ranges(65 * MIB, 32 * MIB, false).last(),
            Some(&(64 * MIB, 65 * MIB))
        );
        // At the 5 GiB cap the merged tail is split evenly instead.
        let big = MAX_PART_SIZE;
        let r = copy_ranges(big + MIB, big, true);
        assert_eq!(r, vec![(0, (big + MIB) / 2), ((big + MIB) / 2, big + MIB)]);
        for (size, chunk) in [
            (123 * MIB + 7, 5 * MIB),
            (5 * MIB, 5 * MIB),
            (11 * MIB, 5 * MIB),
        ] {
            let r = copy_ranges(size, chunk, true);
            assert_eq!(r.first().map(|x| x.0), Some(0));
            assert_eq!(r.last().map(|x| x.1), Some(size));
            for w in r.windows(2) {
                assert_eq!(w[0].1, w[1].0);
            }
            assert!(
                r.iter()
                    .all(|(s, e)| e - s >= MIN_PART_SIZE && e - s <= MAX_PART_SIZE)
            );
        }
    }

    #[test]
    fn copy_source_encoding() {
        assert_eq!(copy_source("b", "a/b.c_d-e~"), "b/a/b.c_d-e~");
        assert_eq!(copy_source("b", "x y+z@=:"), "b/x%20y%2Bz%40%3D%3A");
        assert_eq!(copy_source("b", "ü"), "b/%C3%BC");
    }
}
