//! Writes disco's deterministic test images and blobs (the same generator the
//! integration tests use), for the benchmark and for manual testing.
//!
//! ```text
//! cargo run --release --example mkimage -- image <busybox|busybox-uncompressed|large|multiarch> <DIR>
//! cargo run --release --example mkimage -- blob <MIB> <FILE> [SEED]
//! ```
//! `image` writes an OCI image layout to DIR (use it as `oci:DIR:latest`) and
//! prints its root digest; `blob` writes MIB MiB of pseudo-random bytes and
//! prints their `sha256:` digest.

#[allow(dead_code)]
#[path = "../tests/it/support/images.rs"]
mod images;

use std::io::{self, BufWriter};
use std::path::Path;
use std::process::ExitCode;

use images::{HashWriter, OciLayout, RandomReader, TestImage};

fn usage() -> ExitCode {
    eprintln!(
        "usage: mkimage image <busybox|busybox-uncompressed|large|multiarch> <DIR>\n       mkimage blob <MIB> <FILE> [SEED]"
    );
    ExitCode::from(2)
}

fn run(args: &[String]) -> io::Result<Option<String>> {
    match args {
        [cmd, name, dir] if cmd == "image" => {
            let Some(image) = TestImage::from_name(name) else {
                return Ok(None);
            };
            let dir = Path::new(dir);
            if dir.exists() {
                std::fs::remove_dir_all(dir)?;
            }
            let layout = OciLayout::build(image, dir)?;
            Ok(Some(format!(
                "{} {} bytes",
                layout.root.digest,
                layout.total_size()
            )))
        }
        [cmd, mib, file, rest @ ..] if cmd == "blob" && rest.len() <= 1 => {
            let (Ok(mib), Ok(seed)) = (
                mib.parse::<u64>(),
                rest.first().map_or(Ok(0x5eed), |s| s.parse::<u64>()),
            ) else {
                return Ok(None);
            };
            let len = mib * 1024 * 1024;
            let tmp = format!("{file}.tmp");
            let mut w = HashWriter::new(BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(&tmp)?,
            ));
            io::copy(&mut RandomReader::new(seed, len), &mut w)?;
            let (digest, size) = w.digest();
            w.into_inner().into_inner().map_err(|e| e.into_error())?;
            std::fs::rename(&tmp, file)?;
            Ok(Some(format!("{digest} {size} bytes")))
        }
        _ => Ok(None),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(Some(line)) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Ok(None) => usage(),
        Err(e) => {
            eprintln!("mkimage: {e}");
            ExitCode::FAILURE
        }
    }
}
