//! Deterministic, offline test images written as OCI image layouts.
//!
//! Every image is byte-identical on every run: tar entries have fixed
//! mtimes, uid/gid 0, fixed modes and a fixed order; file content is either
//! fixed text, the Debian `busybox-static` binary, or pseudo-random bytes from
//! a seeded SplitMix64 generator (not compressible); gzip headers carry no
//! timestamp or name; JSON is serialised from structs in a fixed field order.
//!
//! The images (see [`TestImage`]):
//! - `busybox`: one gzip layer holding `/bin/busybox` and its applet links;
//! - `busybox-uncompressed`: the same layer stored uncompressed
//!   (`application/vnd.oci.image.layer.v1.tar`);
//! - `large`: five gzip layers, one of them a 200 MiB pseudo-random file;
//!   about 207 MiB of blobs in all;
//! - `multiarch`: an OCI image index with a linux/amd64 and a linux/arm64
//!   image.
//!
//! This file is also compiled into `examples/mkimage.rs` via `#[path]`, so it
//! depends only on crates (no test support modules).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// OCI image manifest media type.
pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip-compressed layer media type.
pub const MT_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI uncompressed layer media type.
pub const MT_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Annotation naming a manifest in an OCI layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The tag every layout uses in its `index.json`.
pub const TAG: &str = "latest";
/// mtime of every tar entry: 2024-01-01T00:00:00Z.
pub const FIXED_MTIME: u64 = 1_704_067_200;
/// `created` of every config and history entry.
pub const CREATED: &str = "2024-01-01T00:00:00Z";
/// Where Debian's `busybox-static` installs the static binary.
pub const BUSYBOX: &str = "/bin/busybox";
/// Bump when the generator changes, so cached layouts are rebuilt.
const FORMAT_VERSION: u32 = 1;
const MIB: u64 = 1024 * 1024;
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const APPLETS: &[&str] = &[
    "cat",
    "cp",
    "echo",
    "env",
    "false",
    "id",
    "ls",
    "mkdir",
    "rm",
    "sh",
    "sha256sum",
    "sleep",
    "true",
    "uname",
    "wc",
];

/// The test images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TestImage {
    /// One gzip layer: `/bin/busybox` from `busybox-static` plus applet links.
    Busybox,
    /// [`TestImage::Busybox`] with its layer stored uncompressed.
    BusyboxUncompressed,
    /// Five gzip layers, one a 200 MiB pseudo-random file (~207 MiB total).
    Large,
    /// An OCI index: linux/amd64 (busybox) and linux/arm64 images.
    MultiArch,
}

impl TestImage {
    /// Every test image.
    pub const ALL: [TestImage; 4] = [
        TestImage::Busybox,
        TestImage::BusyboxUncompressed,
        TestImage::Large,
        TestImage::MultiArch,
    ];

    /// Short name, used for directories and repository names.
    pub fn name(self) -> &'static str {
        match self {
            TestImage::Busybox => "busybox",
            TestImage::BusyboxUncompressed => "busybox-uncompressed",
            TestImage::Large => "large",
            TestImage::MultiArch => "multiarch",
        }
    }

    /// Parses [`TestImage::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.name() == name)
    }

    fn uses_busybox(self) -> bool {
        !matches!(self, TestImage::Large)
    }
}

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Platform, in index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Descriptor {
    /// The hex part of the digest.
    pub fn hex(&self) -> &str {
        self.digest
            .split_once(':')
            .map_or(self.digest.as_str(), |(_, h)| h)
    }
}

/// An OCI platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`).
    pub architecture: String,
    /// Operating system.
    pub os: String,
    /// CPU variant (`v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The layer blob as it is stored (compressed or not).
    pub desc: Descriptor,
    /// `sha256:` of the uncompressed tar (the config's `diff_ids` entry).
    pub diff_id: String,
}

/// One image (manifest + config + layers) in a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The manifest blob.
    pub manifest: Descriptor,
    /// The config blob.
    pub config: Descriptor,
    /// Layers, bottom first.
    pub layers: Vec<Layer>,
    /// `os`, `architecture`, `variant` from the config.
    pub platform: Platform,
}

/// An OCI image layout on disk and what it holds.
#[derive(Debug, Clone)]
pub struct OciLayout {
    /// Which image this is.
    pub image: TestImage,
    /// The layout directory (`oci-layout`, `index.json`, `blobs/`).
    pub dir: PathBuf,
    /// The tag in `index.json`.
    pub tag: String,
    /// What the tag points to: an image manifest or an image index.
    pub root: Descriptor,
    /// The images (one, or one per platform of the index).
    pub images: Vec<Image>,
}

impl OciLayout {
    /// Builds `image` as a fresh layout in `dir` (which must not exist or be
    /// empty) and opens it.
    pub fn build(image: TestImage, dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir.join("blobs/sha256"))?;
        let mut w = LayoutWriter {
            dir: dir.to_path_buf(),
        };
        let root = match image {
            TestImage::Busybox => w.image(&[busybox_layer(Compression::Gzip)], amd64(), "sh")?,
            TestImage::BusyboxUncompressed => {
                w.image(&[busybox_layer(Compression::None)], amd64(), "sh")?
            }
            TestImage::Large => w.image(&large_layers(), amd64(), "sh")?,
            TestImage::MultiArch => {
                let mut amd = w.image(
                    &[
                        busybox_layer(Compression::Gzip),
                        platform_layer("linux/amd64", 1),
                    ],
                    amd64(),
                    "sh",
                )?;
                let mut arm = w.image(&[platform_layer("linux/arm64/v8", 2)], arm64(), "sh")?;
                amd.platform = Some(amd64());
                arm.platform = Some(arm64());
                let index = IndexJson {
                    schema_version: 2,
                    media_type: MT_INDEX.into(),
                    manifests: vec![amd, arm],
                };
                w.json_blob(MT_INDEX, &index)?
            }
        };
        let mut root = root;
        root.platform = None;
        root.annotations = Some(BTreeMap::from([(REF_NAME.to_string(), TAG.to_string())]));
        let index = IndexJson {
            schema_version: 2,
            media_type: MT_INDEX.into(),
            manifests: vec![root],
        };
        write_atomic(&dir.join("index.json"), &serde_json::to_vec(&index)?)?;
        write_atomic(
            &dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        Self::open(image, dir)
    }

    /// Reads a layout written by [`OciLayout::build`].
    pub fn open(image: TestImage, dir: &Path) -> io::Result<Self> {
        let index: IndexJson = read_json(&dir.join("index.json"))?;
        let root = index
            .manifests
            .into_iter()
            .find(|d| {
                d.annotations
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .map(String::as_str)
                    == Some(TAG)
            })
            .ok_or_else(|| invalid(format!("{}: no manifest tagged {TAG}", dir.display())))?;
        let mut layout = OciLayout {
            image,
            dir: dir.to_path_buf(),
            tag: TAG.to_string(),
            root: root.clone(),
            images: Vec::new(),
        };
        if root.media_type == MT_INDEX {
            let child: IndexJson = serde_json::from_slice(&layout.read_blob(&root.digest)?)?;
            for m in child.manifests {
                let img = layout.read_image(m)?;
                layout.images.push(img);
            }
        } else {
            let img = layout.read_image(root)?;
            layout.images.push(img);
        }
        Ok(layout)
    }

    fn read_image(&self, manifest: Descriptor) -> io::Result<Image> {
        let m: ManifestJson = serde_json::from_slice(&self.read_blob(&manifest.digest)?)?;
        let c: ConfigJson = serde_json::from_slice(&self.read_blob(&m.config.digest)?)?;
        if c.rootfs.diff_ids.len() != m.layers.len() {
            return Err(invalid(format!(
                "{}: diff_ids and layers differ in number",
                manifest.digest
            )));
        }
        let layers = m
            .layers
            .into_iter()
            .zip(c.rootfs.diff_ids)
            .map(|(desc, diff_id)| Layer { desc, diff_id })
            .collect();
        let platform = Platform {
            architecture: c.architecture,
            os: c.os,
            variant: c.variant,
        };
        Ok(Image {
            manifest,
            config: m.config,
            layers,
            platform,
        })
    }

    /// Path of a blob in the layout.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let (alg, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
        self.dir.join("blobs").join(alg).join(hex)
    }

    /// A blob's bytes (for small blobs: manifests, configs, indexes).
    pub fn read_blob(&self, digest: &str) -> io::Result<Vec<u8>> {
        fs::read(self.blob_path(digest))
    }

    /// The containers-image transport reference: `oci:<dir>:<tag>`.
    pub fn reference(&self) -> String {
        format!("oci:{}:{}", self.dir.display(), self.tag)
    }

    /// The single image of a non-index layout (the first image otherwise).
    pub fn image(&self) -> &Image {
        &self.images[0]
    }

    /// The image for an architecture.
    pub fn image_for(&self, architecture: &str) -> Option<&Image> {
        self.images
            .iter()
            .find(|i| i.platform.architecture == architecture)
    }

    /// Whether the root is an image index.
    pub fn is_index(&self) -> bool {
        self.root.media_type == MT_INDEX
    }

    /// Every blob reachable from the root (root first, no duplicates).
    pub fn blobs(&self) -> Vec<Descriptor> {
        let mut out = vec![self.root.clone()];
        for img in &self.images {
            out.push(img.manifest.clone());
            out.push(img.config.clone());
            out.extend(img.layers.iter().map(|l| l.desc.clone()));
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|d| seen.insert(d.digest.clone()));
        out
    }

    /// Sum of the sizes of [`OciLayout::blobs`].
    pub fn total_size(&self) -> u64 {
        self.blobs().iter().map(|d| d.size).sum()
    }

    /// Writes the layout as an uncompressed tar archive (the form
    /// `ctr images import` and `podman load` read), deterministically.
    pub fn write_archive(&self, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        let mut b = tar::Builder::new(BufWriter::new(File::create(&tmp)?));
        let mut dirs = vec!["blobs/", "blobs/sha256/"];
        dirs.sort();
        for d in dirs {
            b.append_data(
                &mut header(tar::EntryType::Directory, 0o755, 0),
                d,
                io::empty(),
            )?;
        }
        for name in ["oci-layout", "index.json"] {
            let data = fs::read(self.dir.join(name))?;
            b.append_data(
                &mut header(tar::EntryType::Regular, 0o644, data.len() as u64),
                name,
                &data[..],
            )?;
        }
        let mut blobs = self.blobs();
        blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
        for d in blobs {
            let f = File::open(self.blob_path(&d.digest))?;
            let len = f.metadata()?.len();
            let name = format!("blobs/sha256/{}", d.hex());
            b.append_data(&mut header(tar::EntryType::Regular, 0o644, len), name, f)?;
        }
        b.into_inner()?.flush()?;
        fs::rename(tmp, path)
    }
}

/// Directory where [`cached`] keeps built layouts: the integration tests'
/// `CARGO_TARGET_TMPDIR` when compiled into them, else the system temp dir.
pub fn cache_root() -> PathBuf {
    match option_env!("CARGO_TARGET_TMPDIR") {
        Some(d) => PathBuf::from(d).join("disco-test-images"),
        None => std::env::temp_dir().join("disco-test-images"),
    }
}

/// The layout of `image`, built on first use and then reused (across test
/// processes too: building is serialised by a lock file and published by an
/// atomic rename). The cache key covers the generator version and, for
/// images containing it, the busybox binary's size and mtime.
pub fn cached(image: TestImage) -> io::Result<OciLayout> {
    let root = cache_root();
    fs::create_dir_all(&root)?;
    let mut key = format!("{}-v{FORMAT_VERSION}", image.name());
    if image.uses_busybox() {
        let md = fs::metadata(BUSYBOX).map_err(busybox_missing)?;
        let mtime = md
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        key.push_str(&format!("-bb{}-{mtime}", md.len()));
    }
    let dir = root.join(&key);
    if dir.join("index.json").exists() {
        return OciLayout::open(image, &dir);
    }
    let lock = File::create(root.join(format!("{key}.lock")))?;
    // SAFETY: flock on a file descriptor we own; released when `lock` drops.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if dir.join("index.json").exists() {
        return OciLayout::open(image, &dir);
    }
    let tmp = root.join(format!("{key}.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    OciLayout::build(image, &tmp)?;
    fs::rename(&tmp, &dir)?;
    OciLayout::open(image, &dir)
}

/// `sha256:<hex>` of bytes.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// `sha256:<hex>` and length of everything `r` yields (streamed).
pub fn sha256_reader(mut r: impl Read) -> io::Result<(String, u64)> {
    let mut w = HashWriter::new(io::sink());
    io::copy(&mut r, &mut w)?;
    Ok(w.finish())
}

/// `sha256:<hex>` and length of a file (streamed).
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    sha256_reader(File::open(path)?)
}

/// Deterministic pseudo-random bytes (SplitMix64): `len` bytes from `seed`.
pub struct RandomReader {
    state: u64,
    left: u64,
    buf: [u8; 8],
    buf_pos: usize,
}

impl RandomReader {
    /// `len` bytes of the stream seeded with `seed`.
    pub fn new(seed: u64, len: u64) -> Self {
        Self {
            state: seed,
            left: len,
            buf: [0; 8],
            buf_pos: 8,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Read for RandomReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = out
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let mut i = 0;
        while i < n {
            if self.buf_pos == 8 {
                if n - i >= 8 {
                    out[i..i + 8].copy_from_slice(&self.next_u64().to_le_bytes());
                    i += 8;
                    continue;
                }
                self.buf = self.next_u64().to_le_bytes();
                self.buf_pos = 0;
            }
            out[i] = self.buf[self.buf_pos];
            self.buf_pos += 1;
            i += 1;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

// ----------------------------------------------------------------------------
// Layer specifications

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Gzip,
    None,
}

enum Content {
    Text(&'static str),
    Owned(String),
    File(&'static str),
    Random { seed: u64, len: u64 },
}

enum Entry {
    Dir(String),
    File {
        path: String,
        mode: u32,
        content: Content,
    },
    Symlink {
        path: String,
        target: &'static str,
    },
}

struct LayerSpec {
    compression: Compression,
    /// History `created_by`.
    comment: String,
    entries: Vec<Entry>,
}

fn file(path: impl Into<String>, mode: u32, content: Content) -> Entry {
    Entry::File {
        path: path.into(),
        mode,
        content,
    }
}

fn amd64() -> Platform {
    Platform {
        architecture: "amd64".into(),
        os: "linux".into(),
        variant: None,
    }
}

fn arm64() -> Platform {
    Platform {
        architecture: "arm64".into(),
        os: "linux".into(),
        variant: Some("v8".into()),
    }
}

fn busybox_layer(compression: Compression) -> LayerSpec {
    let mut entries = vec![
        Entry::Dir("bin/".into()),
        Entry::Dir("etc/".into()),
        Entry::Dir("root/".into()),
        Entry::Dir("tmp/".into()),
        file("bin/busybox", 0o755, Content::File(BUSYBOX)),
    ];
    for applet in APPLETS {
        entries.push(Entry::Symlink {
            path: format!("bin/{applet}"),
            target: "busybox",
        });
    }
    entries.push(file(
        "etc/group",
        0o644,
        Content::Text("root:x:0:\nnogroup:x:65534:\n"),
    ));
    entries.push(file(
        "etc/passwd",
        0o644,
        Content::Text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"),
    ));
    LayerSpec {
        compression,
        comment: "busybox-static /bin/busybox and applet links".into(),
        entries,
    }
}

fn platform_layer(platform: &'static str, seed: u64) -> LayerSpec {
    LayerSpec {
        compression: Compression::Gzip,
        comment: format!("platform marker {platform}"),
        entries: vec![
            Entry::Dir("etc/".into()),
            file(
                "etc/disco-platform",
                0o644,
                Content::Owned(format!("{platform}\n")),
            ),
            Entry::Dir("opt/".into()),
            file(
                "opt/noise.bin",
                0o644,
                Content::Random {
                    seed: 0xA0 + seed,
                    len: 256 * 1024,
                },
            ),
        ],
    }
}

fn large_layers() -> Vec<LayerSpec> {
    let mut layers = vec![LayerSpec {
        compression: Compression::Gzip,
        comment: "base files and 1 MiB of noise".into(),
        entries: vec![
            Entry::Dir("etc/".into()),
            file("etc/hostname", 0o644, Content::Text("disco-large\n")),
            file(
                "etc/os-release",
                0o644,
                Content::Text("NAME=\"disco test image\"\nID=disco-test\n"),
            ),
            Entry::Dir("opt/".into()),
            Entry::Dir("opt/layer1/".into()),
            file(
                "opt/layer1/noise.bin",
                0o644,
                Content::Random { seed: 1, len: MIB },
            ),
        ],
    }];
    for n in 2..=4u64 {
        layers.push(LayerSpec {
            compression: Compression::Gzip,
            comment: format!("layer {n}: 2 MiB of noise"),
            entries: vec![
                Entry::Dir("opt/".into()),
                Entry::Dir(format!("opt/layer{n}/")),
                file(
                    format!("opt/layer{n}/noise.bin"),
                    0o644,
                    Content::Random {
                        seed: n,
                        len: 2 * MIB,
                    },
                ),
            ],
        });
    }
    layers.push(LayerSpec {
        compression: Compression::Gzip,
        comment: "200 MiB of noise".into(),
        entries: vec![
            Entry::Dir("data/".into()),
            file(
                "data/large.bin",
                0o644,
                Content::Random {
                    seed: 5,
                    len: 200 * MIB,
                },
            ),
        ],
    });
    layers
}

// ----------------------------------------------------------------------------
// Writing

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexJson {
    schema_version: u32,
    #[serde(default)]
    media_type: String,
    manifests: Vec<Descriptor>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson {
    schema_version: u32,
    #[serde(default)]
    media_type: String,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Serialize, Deserialize)]
struct ConfigJson {
    #[serde(default)]
    created: String,
    architecture: String,
    os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    #[serde(default)]
    config: RunConfig,
    rootfs: RootFs,
    #[serde(default)]
    history: Vec<History>,
}

#[derive(Serialize, Deserialize, Default)]
struct RunConfig {
    #[serde(rename = "Env", default)]
    env: Vec<String>,
    #[serde(rename = "Cmd", default)]
    cmd: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: String,
    diff_ids: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct History {
    created: String,
    created_by: String,
}

struct LayoutWriter {
    dir: PathBuf,
}

impl LayoutWriter {
    /// Writes layers, config and manifest; returns the manifest descriptor.
    fn image(
        &mut self,
        layers: &[LayerSpec],
        platform: Platform,
        cmd: &str,
    ) -> io::Result<Descriptor> {
        let mut descs = Vec::new();
        let mut diff_ids = Vec::new();
        let mut history = Vec::new();
        for spec in layers {
            let layer = self.layer(spec)?;
            descs.push(layer.desc);
            diff_ids.push(layer.diff_id);
            history.push(History {
                created: CREATED.into(),
                created_by: format!("disco test image: {}", spec.comment),
            });
        }
        let config = ConfigJson {
            created: CREATED.into(),
            architecture: platform.architecture,
            os: platform.os,
            variant: platform.variant,
            config: RunConfig {
                env: vec![PATH_ENV.into()],
                cmd: vec![cmd.into()],
            },
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids,
            },
            history,
        };
        let config = self.json_blob(MT_CONFIG, &config)?;
        let manifest = ManifestJson {
            schema_version: 2,
            media_type: MT_MANIFEST.into(),
            config,
            layers: descs,
        };
        self.json_blob(MT_MANIFEST, &manifest)
    }

    fn json_blob(&mut self, media_type: &str, value: &impl Serialize) -> io::Result<Descriptor> {
        let bytes = serde_json::to_vec(value)?;
        let digest = sha256_digest(&bytes);
        let path = self.blob_path(&digest);
        write_atomic(&path, &bytes)?;
        Ok(descriptor(media_type, digest, bytes.len() as u64))
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.join("blobs/sha256").join(hex)
    }

    fn layer(&mut self, spec: &LayerSpec) -> io::Result<Layer> {
        let tmp = self.dir.join("blobs/sha256/.layer.tmp");
        let file = HashWriter::new(BufWriter::with_capacity(1 << 20, File::create(&tmp)?));
        let (blob, diff_id) = match spec.compression {
            Compression::Gzip => {
                let gz = flate2::GzBuilder::new()
                    .mtime(0)
                    .write(file, flate2::Compression::default());
                let tar = write_tar(HashWriter::new(gz), &spec.entries)?;
                let (diff_id, _) = tar.digest();
                let gz = tar.into_inner();
                let file = gz.finish()?;
                (file, diff_id)
            }
            Compression::None => {
                let file = write_tar(file, &spec.entries)?;
                let (d, _) = file.digest();
                (file, d)
            }
        };
        let (digest, size) = blob.digest();
        blob.into_inner()
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        fs::rename(&tmp, self.blob_path(&digest))?;
        let media_type = match spec.compression {
            Compression::Gzip => MT_LAYER_GZIP,
            Compression::None => MT_LAYER_TAR,
        };
        Ok(Layer {
            desc: descriptor(media_type, digest, size),
            diff_id,
        })
    }
}

fn descriptor(media_type: &str, digest: String, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest,
        size,
        platform: None,
        annotations: None,
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(FIXED_MTIME);
    h.set_size(size);
    h
}

fn write_tar<W: Write>(w: W, entries: &[Entry]) -> io::Result<W> {
    let mut b = tar::Builder::new(w);
    for e in entries {
        match e {
            Entry::Dir(path) => b.append_data(
                &mut header(tar::EntryType::Directory, 0o755, 0),
                path,
                io::empty(),
            )?,
            Entry::Symlink { path, target } => {
                b.append_link(&mut header(tar::EntryType::Symlink, 0o777, 0), path, target)?
            }
            Entry::File {
                path,
                mode,
                content,
            } => {
                let h = |len| header(tar::EntryType::Regular, *mode, len);
                match content {
                    Content::Text(t) => {
                        b.append_data(&mut h(t.len() as u64), path, t.as_bytes())?
                    }
                    Content::Owned(t) => {
                        b.append_data(&mut h(t.len() as u64), path, t.as_bytes())?
                    }
                    Content::File(src) => {
                        let f = File::open(src).map_err(busybox_missing)?;
                        let len = f.metadata()?.len();
                        b.append_data(&mut h(len), path, f)?
                    }
                    Content::Random { seed, len } => {
                        b.append_data(&mut h(*len), path, RandomReader::new(*seed, *len))?
                    }
                }
            }
        }
    }
    b.into_inner()
}

fn busybox_missing(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::NotFound {
        io::Error::new(
            e.kind(),
            format!("{BUSYBOX} missing: run scripts/test (installs Debian package busybox-static)"),
        )
    } else {
        e
    }
}

fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data)?;
    fs::rename(tmp, path)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<T> {
    Ok(serde_json::from_slice(&fs::read(path)?)?)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A writer that hashes (sha256) and counts what passes through.
pub struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// `sha256:<hex>` and byte count so far.
    pub fn digest(&self) -> (String, u64) {
        (
            format!("sha256:{}", hex::encode(self.hasher.clone().finalize())),
            self.len,
        )
    }

    /// Digest, count, dropping the inner writer.
    pub fn finish(self) -> (String, u64) {
        self.digest()
    }

    /// The wrapped writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every blob of a layout hashes to its digest and has its size; every
    /// layer decompresses to its diff_id.
    fn assert_layout_consistent(l: &OciLayout) {
        for d in l.blobs() {
            let (digest, size) = sha256_file(&l.blob_path(&d.digest)).unwrap();
            assert_eq!(
                (digest.as_str(), size),
                (d.digest.as_str(), d.size),
                "blob {}",
                d.digest
            );
        }
        for img in &l.images {
            for layer in &img.layers {
                let f = File::open(l.blob_path(&layer.desc.digest)).unwrap();
                let (diff_id, _) = match layer.desc.media_type.as_str() {
                    MT_LAYER_GZIP => sha256_reader(flate2::read::GzDecoder::new(f)).unwrap(),
                    MT_LAYER_TAR => sha256_reader(f).unwrap(),
                    other => panic!("unexpected layer type {other}"),
                };
                assert_eq!(diff_id, layer.diff_id);
            }
        }
    }

    #[test]
    fn random_reader_is_splitmix64() {
        // SplitMix64 seeded with 0: first output 0xe220a8397b1dcdaf (little endian).
        let mut buf = [0u8; 11];
        RandomReader::new(0, 11).read_exact(&mut buf).unwrap();
        assert_eq!(&buf[..8], &0xe220_a839_7b1d_cdafu64.to_le_bytes());
        let mut all = Vec::new();
        RandomReader::new(0, 11).read_to_end(&mut all).unwrap();
        assert_eq!(all, buf);
    }

    #[test]
    fn busybox_image_is_byte_identical_across_builds() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let la = OciLayout::build(TestImage::Busybox, &a.path().join("l")).unwrap();
        let lb = OciLayout::build(TestImage::Busybox, &b.path().join("l")).unwrap();
        assert_eq!(la.root, lb.root);
        assert_eq!(la.images, lb.images);
        for name in ["index.json", "oci-layout"] {
            assert_eq!(
                fs::read(la.dir.join(name)).unwrap(),
                fs::read(lb.dir.join(name)).unwrap()
            );
        }
        assert_layout_consistent(&la);
        let img = la.image();
        assert_eq!(img.layers.len(), 1);
        assert_eq!(img.platform, amd64());
        assert_eq!(img.layers[0].desc.media_type, MT_LAYER_GZIP);
        // The archive form is deterministic too.
        la.write_archive(&a.path().join("x.tar")).unwrap();
        lb.write_archive(&b.path().join("x.tar")).unwrap();
        assert_eq!(
            fs::read(a.path().join("x.tar")).unwrap(),
            fs::read(b.path().join("x.tar")).unwrap()
        );
    }

    #[test]
    fn uncompressed_busybox_layer_digest_is_its_diff_id() {
        let l = cached(TestImage::BusyboxUncompressed).unwrap();
        assert_layout_consistent(&l);
        let layer = &l.image().layers[0];
        assert_eq!(layer.desc.media_type, MT_LAYER_TAR);
        assert_eq!(layer.desc.digest, layer.diff_id);
        // Same tar as the gzip variant's.
        let gz = cached(TestImage::Busybox).unwrap();
        assert_eq!(gz.image().layers[0].diff_id, layer.diff_id);
    }

    #[test]
    fn multiarch_index_has_amd64_and_arm64() {
        let l = cached(TestImage::MultiArch).unwrap();
        assert!(l.is_index());
        assert_layout_consistent(&l);
        let index: IndexJson =
            serde_json::from_slice(&l.read_blob(&l.root.digest).unwrap()).unwrap();
        let platforms: Vec<_> = index
            .manifests
            .iter()
            .map(|m| m.platform.clone().unwrap())
            .collect();
        assert_eq!(platforms, vec![amd64(), arm64()]);
        assert_eq!(l.image_for("amd64").unwrap().platform, amd64());
        assert_eq!(l.image_for("arm64").unwrap().platform, arm64());
        // The amd64 image shares its busybox layer with the busybox image.
        let bb = cached(TestImage::Busybox).unwrap();
        assert_eq!(
            l.image_for("amd64").unwrap().layers[0],
            bb.image().layers[0]
        );
    }

    #[test]
    fn large_image_is_207_mib_with_pinned_content() {
        let l = cached(TestImage::Large).unwrap();
        assert_layout_consistent(&l);
        let img = l.image();
        assert_eq!(img.layers.len(), 5);
        let total_mib = l.total_size() as f64 / MIB as f64;
        assert!((206.0..208.5).contains(&total_mib), "total {total_mib} MiB");
        // Tar bytes (and so the config, which lists their diff_ids) do not
        // depend on the machine or the gzip implementation.
        assert_eq!(img.config.digest, PINNED_LARGE_CONFIG);
    }

    const PINNED_LARGE_CONFIG: &str =
        "sha256:d889af3880563a51dccebc3f405b0678e4f6bea8c5b41f432718498230c85a94";
}
