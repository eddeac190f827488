#!/usr/bin/env bash
# Bitswap benchmark between disco embedded nodes on 127.0.0.1: a 1 GiB file
# from one provider, then from two providers at once; time to first byte
# and the fetcher's peak RSS. Usage: bench/net-bench.sh [MiB] [profile]
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-1024}
PROFILE=${2:-release}
cargo build --profile "$PROFILE" --example net-bench
dir=${CARGO_TARGET_DIR:-target}/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")/examples
bin=$dir/net-bench
out=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$out"; }
trap cleanup EXIT

serve() { # port seed logfile
  : >"$3"
  "$bin" serve "$1" "$MIB" "$2" >"$3" 2>&1 &
  pids+=($!)
  for _ in $(seq 600); do grep -q '^ADDR' "$3" && return 0; sleep 0.5; done
  echo "provider did not start" >&2; exit 1
}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

serve "$(port)" 7 "$out/a"
serve "$(port)" 7 "$out/b"
root=$(awk '/^ROOT/{print $2}' "$out/a")
[ "$root" = "$(awk '/^ROOT/{print $2}' "$out/b")" ] || { echo "providers disagree" >&2; exit 1; }
a=$(awk '/^ADDR/{print $2}' "$out/a"); b=$(awk '/^ADDR/{print $2}' "$out/b")
echo "root $root ($MIB MiB), profile $PROFILE"
for set in "$a" "$a $b"; do
  # shellcheck disable=SC2086
  /usr/bin/time -f "peak_rss_kib=%M" "$bin" fetch "$root" $set 2>&1 | grep -E 'providers=|received_blocks|peak_rss'
done
