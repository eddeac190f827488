#!/usr/bin/env bash
# Benchmarks of the embedded IPFS store (issue 4). Results: bench/README-store.md.
# Usage: bench/store-bench.sh [workdir]   (default: a temporary directory)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
trap 'rm -rf "$work"/mfs10k "$work"/mfs100k "$work"/add "$work"/bs' EXIT
cargo build -q --examples
bin="${CARGO_TARGET_DIR:-target}/debug/examples"
echo "== MFS small-file writes (registry layout, 4 concurrent writers)"
"$bin/store_bench" mfs "$work/mfs10k" 10000 4
"$bin/store_bench" mfs "$work/mfs100k" 100000 4
echo "== 1 GiB canonical add vs openssl"
[ -f "$work/1g.bin" ] || head -c 1073741824 /dev/urandom > "$work/1g.bin"
/usr/bin/time -f "openssl dgst -sha256: %e s" openssl dgst -sha256 "$work/1g.bin"
"$bin/store_bench" add "$work/add" "$work/1g.bin"
echo "== blockstore: flatfs vs redb"
mkdir -p "$work/bs"
"$bin/store_blockstore_bench" "$work/bs"
