//! Build script: records the git commit the binary is built from, for
//! `disco --version`. `DISCO_GIT_COMMIT` overrides it (packagers building
//! from a tarball); outside a git checkout, or without git, it is
//! `unknown`.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=DISCO_GIT_COMMIT");
    let commit = match std::env::var("DISCO_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => Some(c.trim().to_string()),
        _ => git(&["rev-parse", "--short=12", "HEAD"]),
    };
    // Build again when HEAD moves: HEAD itself, the branch it names, and
    // packed refs.
    if let (Some(dir), Some(common)) = (
        git(&["rev-parse", "--absolute-git-dir"]),
        git(&["rev-parse", "--git-common-dir"]),
    ) {
        let common = Path::new(env!("CARGO_MANIFEST_DIR")).join(common);
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!(
            "cargo:rerun-if-changed={}",
            common.join("packed-refs").display()
        );
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", common.join(branch).display());
        }
    }
    println!(
        "cargo:rustc-env=DISCO_GIT_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
}
