//! `storage.s3` configuration, with CNCF Distribution's key names, defaults
//! and limits. Numbers and booleans may also be given as strings (as
//! Distribution's environment overrides produce them).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// S3's smallest part of a multipart upload (all parts but the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's largest part, and largest single copy.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// S3's largest part number.
pub const MAX_PARTS: usize = 10_000;
/// Longest lifetime of a SigV4 presigned URL.
pub const MAX_PRESIGN_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// `storage.s3`: an S3 (or S3-compatible) bucket.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct S3Config {
    /// Access key id. Default empty: credentials come from the standard AWS
    /// chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`,
    /// profile files, web identity, ECS/EC2 roles).
    pub accesskey: String,
    /// Secret access key (default empty; see `accesskey`).
    pub secretkey: String,
    /// Region of the bucket. Required unless `regionendpoint` is set, in
    /// which case the default is `us-east-1`.
    pub region: String,
    /// Endpoint URL of an S3-compatible service (default empty: AWS). A URL
    /// without a scheme gets `https://`, or `http://` when `secure` is false.
    pub regionendpoint: String,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual-host
    /// style (`bucket.endpoint/key`); most S3-compatible servers need it.
    /// Default false.
    pub forcepathstyle: bool,
    /// Bucket name (required; the bucket must exist).
    pub bucket: String,
    /// Server-side encryption of every object: `AES256`, or `aws:kms` when
    /// `keyid` is set. Default false.
    pub encrypt: bool,
    /// KMS key id for `encrypt` (default empty: S3-managed keys).
    pub keyid: String,
    /// Use HTTPS for endpoints given without a scheme and for AWS. Default true.
    pub secure: bool,
    /// Skip TLS verification. Default false; `true` is refused (add the
    /// server's CA to the system trust store instead).
    pub skipverify: bool,
    /// SigV4 signing. Default true; `false` (SigV2) is refused: the AWS SDK
    /// signs with SigV4 only.
    pub v4auth: bool,
    /// Part size of multipart uploads in bytes, and so the memory a writer
    /// holds. Default 10 MiB; between 5 MiB and 5 GiB.
    #[serde(deserialize_with = "de_u64")]
    pub chunksize: u64,
    /// Part size of multipart copies in bytes. Default 32 MiB; between
    /// 5 MiB and 5 GiB.
    #[serde(deserialize_with = "de_u64")]
    pub multipartcopychunksize: u64,
    /// Concurrent part copies of one multipart copy. Default 100; at least 1.
    #[serde(deserialize_with = "de_u64")]
    pub multipartcopymaxconcurrency: u64,
    /// Objects larger than this many bytes are copied with multipart copy,
    /// others with one CopyObject. Default 32 MiB; at most 5 GiB.
    #[serde(deserialize_with = "de_u64")]
    pub multipartcopythresholdsize: u64,
    /// Key prefix under which everything is stored (default empty: the
    /// bucket root).
    pub rootdirectory: String,
    /// Storage class of new objects (default `STANDARD`; `NONE` sends none,
    /// for servers that reject the header).
    pub storageclass: String,
    /// Canned ACL of new objects (default `private`; `none` sends none, for
    /// buckets with ACLs disabled).
    pub objectacl: String,
    /// Dual-stack (IPv6) AWS endpoints. Default false.
    pub usedualstack: bool,
    /// S3 Transfer Acceleration endpoints. Default false.
    pub accelerate: bool,
    /// FIPS AWS endpoints. Default false.
    pub usefipsendpoint: bool,
    /// Lifetime of presigned redirect URLs, as a duration (`20m`, `1h30m`,
    /// `900s`; a bare number is seconds). Default `20m` (Distribution's fixed
    /// value); at most 7 days.
    #[serde(deserialize_with = "de_duration")]
    pub redirectexpiry: Duration,
    /// Attempts per request, including the first, with exponential backoff
    /// between attempts on throttling, 5xx and connection errors (disco
    /// extension). Default 5; at least 1.
    #[serde(deserialize_with = "de_u64")]
    pub maxattempts: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            accesskey: String::new(),
            secretkey: String::new(),
            region: String::new(),
            regionendpoint: String::new(),
            forcepathstyle: false,
            bucket: String::new(),
            encrypt: false,
            keyid: String::new(),
            secure: true,
            skipverify: false,
            v4auth: true,
            chunksize: 2 * MIN_PART_SIZE,
            multipartcopychunksize: 32 * 1024 * 1024,
            multipartcopymaxconcurrency: 100,
            multipartcopythresholdsize: 32 * 1024 * 1024,
            rootdirectory: String::new(),
            storageclass: "STANDARD".into(),
            objectacl: "private".into(),
            usedualstack: false,
            accelerate: false,
            usefipsendpoint: false,
            redirectexpiry: Duration::from_secs(20 * 60),
            maxattempts: 5,
        }
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = if self.secretkey.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("S3Config")
            .field("accesskey", &self.accesskey)
            .field("secretkey", &secret)
            .field("region", &self.region)
            .field("regionendpoint", &self.regionendpoint)
            .field("forcepathstyle", &self.forcepathstyle)
            .field("bucket", &self.bucket)
            .field("encrypt", &self.encrypt)
            .field("keyid", &self.keyid)
            .field("secure", &self.secure)
            .field("skipverify", &self.skipverify)
            .field("v4auth", &self.v4auth)
            .field("chunksize", &self.chunksize)
            .field("multipartcopychunksize", &self.multipartcopychunksize)
            .field(
                "multipartcopymaxconcurrency",
                &self.multipartcopymaxconcurrency,
            )
            .field(
                "multipartcopythresholdsize",
                &self.multipartcopythresholdsize,
            )
            .field("rootdirectory", &self.rootdirectory)
            .field("storageclass", &self.storageclass)
            .field("objectacl", &self.objectacl)
            .field("usedualstack", &self.usedualstack)
            .field("accelerate", &self.accelerate)
            .field("usefipsendpoint", &self.usefipsendpoint)
            .field("redirectexpiry", &self.redirectexpiry)
            .field("maxattempts", &self.maxattempts)
            .finish()
    }
}

/// Storage classes S3 serves without a restore step (as Distribution).
const STORAGE_CLASSES: &[&str] = &[
    "NONE",
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "OUTPOSTS",
    "GLACIER_IR",
    "EXPRESS_ONEZONE",
];

/// Canned ACLs S3 knows.
const OBJECT_ACLS: &[&str] = &[
    "none",
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];

impl S3Config {
    /// Checks every value; the error names the key and the allowed range.
    pub fn validate(&self) -> Result<(), String> {
        if self.bucket.is_empty() {
            return Err("storage.s3.bucket is required".into());
        }
        if self.region.is_empty() && self.regionendpoint.is_empty() {
            return Err("storage.s3.region is required (or set storage.s3.regionendpoint)".into());
        }
        if self.accesskey.is_empty() != self.secretkey.is_empty() {
            return Err(
                "storage.s3.accesskey and storage.s3.secretkey must be set together \
                 (or both left empty to use the AWS credential chain)"
                    .into(),
            );
        }
        if self.skipverify {
            return Err(
                "storage.s3.skipverify is not supported: add the server's CA \
                        certificate to the system trust store instead"
                    .into(),
            );
        }
        if !self.v4auth {
            return Err(
                "storage.s3.v4auth: false is not supported: requests are signed with SigV4, \
                 which Amazon S3 and current S3-compatible servers accept"
                    .into(),
            );
        }
        check_range("chunksize", self.chunksize, MIN_PART_SIZE, MAX_PART_SIZE)?;
        check_range(
            "multipartcopychunksize",
            self.multipartcopychunksize,
            MIN_PART_SIZE,
            MAX_PART_SIZE,
        )?;
        check_range(
            "multipartcopymaxconcurrency",
            self.multipartcopymaxconcurrency,
            1,
            u64::from(u32::MAX),
        )?;
        check_range(
            "multipartcopythresholdsize",
            self.multipartcopythresholdsize,
            0,
            MAX_PART_SIZE,
        )?;
        check_range("maxattempts", self.maxattempts, 1, 100)?;
        if self.redirectexpiry.is_zero() || self.redirectexpiry > MAX_PRESIGN_EXPIRY {
            return Err(format!(
                "storage.s3.redirectexpiry {:?} must be more than 0 and at most 7 days",
                self.redirectexpiry
            ));
        }
        if !STORAGE_CLASSES.contains(&self.storage_class_upper().as_str()) {
            return Err(format!(
                "storage.s3.storageclass {:?} must be one of {STORAGE_CLASSES:?}",
                self.storageclass
            ));
        }
        if !OBJECT_ACLS.contains(&self.objectacl.as_str()) {
            return Err(format!(
                "storage.s3.objectacl {:?} must be one of {OBJECT_ACLS:?}",
                self.objectacl
            ));
        }
        if self.rootdirectory.split('/').any(|c| c == "." || c == "..") {
            return Err(format!(
                "storage.s3.rootdirectory {:?} must not contain . or .. components",
                self.rootdirectory
            ));
        }
        Ok(())
    }

    /// The storage class in upper case (Distribution accepts any case).
    pub fn storage_class_upper(&self) -> String {
        self.storageclass.to_ascii_uppercase()
    }

    /// The endpoint URL to use, if any (a scheme added per `secure`).
    pub fn endpoint_url(&self) -> Option<String> {
        let scheme = if self.secure { "https" } else { "http" };
        if self.regionendpoint.is_empty() {
            // AWS over plain HTTP: the SDK has no switch for it, so spell the
            // regional endpoint out.
            return (!self.secure).then(|| format!("http://s3.{}.amazonaws.com", self.region()));
        }
        if self.regionendpoint.contains("://") {
            Some(self.regionendpoint.clone())
        } else {
            Some(format!("{scheme}://{}", self.regionendpoint))
        }
    }

    /// The signing region.
    pub fn region(&self) -> &str {
        if self.region.is_empty() {
            "us-east-1"
        } else {
            &self.region
        }
    }

    /// The key prefix every path is stored under: empty, or ending in `/`.
    pub fn key_prefix(&self) -> String {
        let trimmed = self.rootdirectory.trim_matches('/');
        if trimmed.is_empty() {
            String::new()
        } else {
            format!("{trimmed}/")
        }
    }
}

fn check_range(key: &str, value: u64, min: u64, max: u64) -> Result<(), String> {
    if value < min || value > max {
        return Err(format!(
            "storage.s3.{key} {value} must be between {min} and {max} (inclusive)"
        ));
    }
    Ok(())
}

/// A number, or a string holding one.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr {
    Num(u64),
    Str(String),
}

fn de_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match NumOrStr::deserialize(d)? {
        NumOrStr::Num(n) => Ok(n),
        NumOrStr::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("expected an integer, got {s:?}"))),
    }
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = match NumOrStr::deserialize(d)? {
        NumOrStr::Num(n) => return Ok(Duration::from_secs(n)),
        NumOrStr::Str(s) => s,
    };
    crate::config::parse_duration(&text).map_err(|_| {
        serde::de::Error::custom(format!(
            "expected a duration such as 20m, 1h30m or 900s, got {text:?}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> S3Config {
        yaml_serde::from_str(yaml).expect("parse")
    }

    #[test]
    fn defaults_match_distribution() {
        let c = parse("bucket: b\nregion: us-east-1\n");
        assert_eq!(c.chunksize, 10 * 1024 * 1024);
        assert_eq!(c.multipartcopychunksize, 32 * 1024 * 1024);
        assert_eq!(c.multipartcopymaxconcurrency, 100);
        assert_eq!(c.multipartcopythresholdsize, 32 * 1024 * 1024);
        assert!(c.secure && c.v4auth && !c.encrypt && !c.forcepathstyle);
        assert_eq!(c.storageclass, "STANDARD");
        assert_eq!(c.objectacl, "private");
        assert_eq!(c.redirectexpiry, Duration::from_secs(1200));
        assert_eq!(c.key_prefix(), "");
        c.validate().unwrap();
    }

    #[test]
    fn strings_for_numbers_and_durations() {
        let c = parse(
            "bucket: b\nregion: r\nchunksize: \"6291456\"\nmultipartcopymaxconcurrency: 7\n\
             redirectexpiry: 1h30m\nrootdirectory: /a/b/\nsecretkey: s\naccesskey: a\n",
        );
        assert_eq!(c.chunksize, 6 * 1024 * 1024);
        assert_eq!(c.multipartcopymaxconcurrency, 7);
        assert_eq!(c.redirectexpiry, Duration::from_secs(5400));
        assert_eq!(c.key_prefix(), "a/b/");
        c.validate().unwrap();
        assert!(!format!("{c:?}").contains("secretkey: \"s\""));
        assert_eq!(parse("redirectexpiry: 90").redirectexpiry.as_secs(), 90);
    }

    #[test]
    fn validation_names_the_key() {
        let base = parse("bucket: b\nregion: r\n");
        let check = |mut f: Box<dyn FnMut(&mut S3Config)>, needle: &str| {
            let mut c = base.clone();
            f(&mut c);
            let e = c.validate().unwrap_err();
            assert!(e.contains(needle), "{e} should mention {needle}");
        };
        check(Box::new(|c| c.chunksize = 1024), "chunksize");
        check(Box::new(|c| c.bucket.clear()), "bucket");
        check(Box::new(|c| c.region.clear()), "region");
        check(Box::new(|c| c.accesskey = "a".into()), "secretkey");
        check(Box::new(|c| c.v4auth = false), "v4auth");
        check(Box::new(|c| c.skipverify = true), "skipverify");
        check(
            Box::new(|c| c.storageclass = "GLACIER".into()),
            "storageclass",
        );
        check(Box::new(|c| c.objectacl = "x".into()), "objectacl");
        check(
            Box::new(|c| c.multipartcopymaxconcurrency = 0),
            "concurrency",
        );
        check(
            Box::new(|c| c.redirectexpiry = Duration::from_secs(8 * 86400)),
            "redirectexpiry",
        );
        check(
            Box::new(|c| c.rootdirectory = "a/../b".into()),
            "rootdirectory",
        );
    }

    #[test]
    fn endpoints() {
        let mut c = parse("bucket: b\nregionendpoint: 127.0.0.1:9000\nsecure: false\n");
        assert_eq!(c.endpoint_url().unwrap(), "http://127.0.0.1:9000");
        assert_eq!(c.region(), "us-east-1");
        c.secure = true;
        assert_eq!(c.endpoint_url().unwrap(), "https://127.0.0.1:9000");
        c.regionendpoint = "http://h:1".into();
        assert_eq!(c.endpoint_url().unwrap(), "http://h:1");
        let aws = parse("bucket: b\nregion: eu-west-1\n");
        assert_eq!(aws.endpoint_url(), None);
    }
}
