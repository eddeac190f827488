#!/usr/bin/env bash
# Pull-through mirror benchmark: one image in a local CNCF Distribution
# (`docker-registry`, the "upstream"), two discos on one private IPFS
# network mirroring it. Prints the time of the first pull (disco A fetches
# from the upstream) and of the second (disco B resolves the tag upstream
# and takes the blobs from A by CID), with the mirror metrics of both.
# Not a test: it asserts nothing.
#
# Usage: bench/mirror.sh [-s busybox|large] [-p PROFILE]
# Needs: the test dependencies (sudo scripts/setup-test-deps), root
# (skopeo runs in a private mount namespace so it leaves no cache behind).
set -euo pipefail

cd "$(dirname "$0")/.."
size=large
profile=release
while getopts "s:p:h" opt; do
    case $opt in
        s) size=$OPTARG ;;
        p) profile=$OPTARG ;;
        *) sed -n '2,11p' "$0"; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "bench/mirror.sh: run as root" >&2; exit 1; }
for t in skopeo curl docker-registry unshare python3; do
    command -v "$t" >/dev/null || { echo "bench/mirror.sh: $t missing: run sudo scripts/setup-test-deps" >&2; exit 1; }
done
target=${CARGO_TARGET_DIR:-$(pwd)/target}
cargo build --profile "$profile" --quiet --bin disco --example mkimage
dir=$profile; [ "$profile" = dev ] && dir=debug
disco=$target/$dir/disco
mkimage=$target/$dir/examples/mkimage

work=$(mktemp -d /tmp/disco-mirror-bench-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 1 300); do curl -sf -o /dev/null "http://$1/v2/" && return; sleep 0.1; done; echo "$1 did not start" >&2; exit 1; }
skopeo_fresh() {
    local cache; cache=$(mktemp -d "$work/bic-XXXXXX")
    unshare --mount --propagation private -- sh -c \
        'mkdir -p /var/lib/containers/cache && mount --bind "$1" /var/lib/containers/cache && shift && exec "$@"' \
        sh "$cache" skopeo --insecure-policy "$@"
}
metric() { curl -s "http://$1/metrics" | awk -v k="$2" '$1==k {print $2}'; }

read -r _ image_bytes _ < <("$mkimage" image "$size" "$work/img")
up=127.0.0.1:$(port)
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' "$work/up" "$up" > "$work/up.yml"
docker-registry serve "$work/up.yml" >"$work/up.log" 2>&1 & pids+=($!)
wait_up "$up"
skopeo_fresh copy -q --preserve-digests --dest-tls-verify=false "oci:$work/img:latest" "docker://$up/bench/img:v1" >/dev/null

printf '/key/swarm/psk/1.0.0/\n/base16/\n%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$work/swarm.key"
start_disco() { # name bootstrap
    local n=$1 api dbg swarm
    api=127.0.0.1:$(port); dbg=127.0.0.1:$(port); swarm=$(port)
    cat > "$work/$n.yml" <<YAML
storage:
  ipfs:
    embedded:
      path: $work/$n/ipfs
      listen: [/ip4/127.0.0.1/tcp/$swarm]
      mdns: false
      swarmkey: $work/swarm.key
      bootstrap: [$2]
http:
  addr: $api
  debug:
    addr: $dbg
log:
  accesslog:
    disabled: true
proxy:
  remoteurl: http://$up
YAML
    HOME=$work/$n "$disco" serve --config "$work/$n.yml" >"$work/$n.log" 2>&1 & pids+=($!)
    wait_up "$api"
    printf -v "${n}_api" '%s' "$api"
    printf -v "${n}_dbg" '%s' "$dbg"
}
start_disco a ""
a_peer=$(curl -s "http://$a_api/disco/v1/node" | python3 -c 'import json,sys; print(json.load(sys.stdin)["addresses"][0])')
start_disco b "$a_peer"

pull() { # api label
    local t0 t1
    t0=$(date +%s.%N)
    skopeo_fresh copy -q --src-tls-verify=false "docker://$1/bench/img:v1" "oci:$work/pulled-$2:latest" >/dev/null
    t1=$(date +%s.%N)
    python3 -c "print(f'{\"$2\":<28} {$t1-$t0:8.2f} s  {$image_bytes/1048576/($t1-$t0):8.1f} MiB/s')"
}
echo "# image: $size, $((image_bytes / 1048576)) MiB"
pull "$a_api" "first pull (upstream)"
digest=$(skopeo_fresh inspect --tls-verify=false "docker://$a_api/bench/img:v1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])')
for _ in $(seq 1 600); do curl -sf -o /dev/null "http://$a_api/disco/v1/images/$digest" && break; sleep 0.1; done
pull "$b_api" "second node (peer, by CID)"
for n in a b; do
    d=${n}_dbg
    echo "# $n: upstream bytes $(metric "${!d}" disco_mirror_upstream_bytes_total), peer bytes $(metric "${!d}" disco_mirror_peer_bytes_total), peer hits $(metric "${!d}" disco_mirror_peer_hits_total)"
done
