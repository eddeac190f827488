#!/usr/bin/env bash
# A site of discos on one host (issue 18): NODES discos, each swarm on its
# own loopback address 127.0.0.X (mDNS off, node 1 the only bootstrap entry,
# DHT server mode). An image with one MIB-MiB layer is pushed to node 2;
# every node is restarted on the same data and addresses; after idle
# connections closed, every other node pulls the manifest by CID (time to
# manifest, p50/p99); then PULLERS nodes pull the whole image at once
# (aggregate throughput).
# Usage: bench/site-bench.sh [NODES=64] [MIB=207] [PULLERS=8] [profile=release]
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${1:-64}
MIB=${2:-207}
PULLERS=${3:-8}
PROFILE=${4:-release}
# The same targets as bench/registry.sh, so both share one feature set and build.
cargo build --profile "$PROFILE" --quiet --bin disco --example mkimage
bin=${CARGO_TARGET_DIR:-target}/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")/disco
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
echo "machine load at start: $(uptime)"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The image: one incompressible layer of MIB MiB, as an OCI layout.
python3 - "$work/img" "$MIB" <<'EOF'
import gzip, hashlib, io, json, os, sys, tarfile
d, mib = sys.argv[1], int(sys.argv[2])
os.makedirs(f"{d}/blobs/sha256")
def put(b):
    h = hashlib.sha256(b).hexdigest()
    open(f"{d}/blobs/sha256/{h}", "wb").write(b)
    return {"digest": "sha256:" + h, "size": len(b)}
data = os.urandom(mib << 20)
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w") as t:
    i = tarfile.TarInfo("blob.bin"); i.size = len(data); t.addfile(i, io.BytesIO(data))
raw = raw.getvalue()
layer = put(gzip.compress(raw, 1)); layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
cfg = put(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
    "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}).encode())
cfg["mediaType"] = "application/vnd.oci.image.config.v1+json"
m = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": cfg, "layers": [layer]}).encode())
m["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
m["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
open(f"{d}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
json.dump({"schemaVersion": 2, "manifests": [m]}, open(f"{d}/index.json", "w"))
EOF

declare -a http swarm peer
start() { # index
  local i=$1 dir=$work/n$1
  mkdir -p "$dir/ipfs"
  # One private network for the site (disco is private by default: without a
  # shared key every node would make a network of its own).
  install -m 600 "$work/swarm.key" "$dir/ipfs/swarm.key"
  local boot=""
  [ "$i" -gt 1 ] && boot="      bootstrap: [${peer[1]}]"
  cat >"$dir/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  ipfs:
    spooldirectory: $dir/spool
    embedded:
      path: $dir/ipfs
      listen: [/ip4/127.0.0.$i/tcp/${swarm[$i]}]
      mdns: false
      idletimeout: 5s
      gc: {enabled: false}
$boot
http:
  addr: 127.0.0.1:${http[$i]}
EOF
  HOME=$dir "$bin" serve --config "$dir/config.yml" >>"$dir/log" 2>&1 &
  pids[$i]=$!
}
ready() { for _ in $(seq 600); do curl -fs "http://127.0.0.1:${http[$1]}/v2/" >/dev/null && return 0; sleep 0.1; done; echo "node $1 not ready" >&2; exit 1; }

printf '/key/swarm/psk/1.0.0/\n/base16/\n%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$work/swarm.key"
for i in $(seq "$NODES"); do http[$i]=$(port); swarm[$i]=$(port); done
start 1; ready 1
peer[1]=$(curl -s "http://127.0.0.1:${http[1]}/disco/v1/node" | python3 -c 'import json,sys; print(json.load(sys.stdin)["addresses"][0])')
for i in $(seq 2 "$NODES"); do start "$i"; done
for i in $(seq 2 "$NODES"); do ready "$i"; done
echo "$NODES nodes up"

skopeo copy -q --dest-tls-verify=false "oci:$work/img:latest" "docker://127.0.0.1:${http[2]}/bench/app:v1"
digest=$(python3 -c "import json; print(json.load(open('$work/img/index.json'))['manifests'][0]['digest'])")
cid=$(curl -s "http://127.0.0.1:${http[2]}/disco/v1/images/$digest" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cid"])')
echo "pushed $MIB MiB image to node 2: $cid"

# Full restart on the same data and addresses.
for i in $(seq "$NODES"); do kill "${pids[$i]}"; done
for i in $(seq "$NODES"); do while kill -0 "${pids[$i]}" 2>/dev/null; do sleep 0.1; done; done
restart=$(date +%s.%N)
for i in $(seq "$NODES"); do start "$i"; done
for i in $(seq "$NODES"); do ready "$i"; done
echo "restarted in $(python3 -c "import time; print(round(time.time()-$restart,1))") s; waiting 8 s for idle connections to close"
sleep 8

# Time to manifest by CID from every node but the holder, 8 at a time.
accept='Accept: application/vnd.oci.image.manifest.v1+json'
for i in $(seq "$NODES"); do
  [ "$i" = 2 ] && continue
  echo "$i"
done | xargs -P 8 -I{} sh -c "curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H '$accept' http://127.0.0.1:\$(sed -n 's/^  addr: 127.0.0.1://p' $work/n{}/config.yml)/v2/$cid/manifests/latest" >"$work/times"
python3 - "$work/times" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
ok = sorted(float(t) for c, t in rows if c == "200")
bad = [c for c, _ in rows if c != "200"]
q = lambda p: ok[min(len(ok) - 1, int(round(p * (len(ok) - 1))))]
print(f"time to manifest after restart: n={len(ok)} failed={len(bad)} p50={q(0.5):.3f} s p99={q(0.99):.3f} s max={ok[-1]:.3f} s")
EOF

# PULLERS concurrent whole-image pulls (fresh nodes: the last ones never
# pulled the layer; the manifests are local now).
layer=$(python3 -c "import json; m=json.load(open('$work/img/blobs/sha256/'+'$digest'.split(':')[1])); print(m['layers'][0]['digest'])")
t0=$(date +%s.%N)
pulls=()
for i in $(seq $((NODES - PULLERS + 1)) "$NODES"); do
  curl -s -o /dev/null -w "%{http_code} %{size_download}\n" "http://127.0.0.1:${http[$i]}/v2/$cid/blobs/$layer" >>"$work/pulls" &
  pulls+=($!)
done
wait "${pulls[@]}"
t1=$(date +%s.%N)
python3 - "$work/pulls" "$t0" "$t1" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
total = sum(int(s) for c, s in rows if c == "200")
secs = float(sys.argv[3]) - float(sys.argv[2])
print(f"{len(rows)} concurrent pulls: {sum(c=='200' for c,_ in rows)} ok, {total/1e6:.0f} MB in {secs:.1f} s = {total/1e6/secs:.0f} MB/s aggregate")
EOF
echo "machine load at end: $(uptime)"
