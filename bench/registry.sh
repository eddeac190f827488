#!/usr/bin/env bash
# Registry benchmark: CNCF Distribution vs disco (and later more storage
# backends) on this machine, one run, side by side. Not a test: it asserts
# nothing, it prints numbers.
#
# For every backend and every run (backends alternate within a run, each on
# fresh storage) it measures:
#   push      skopeo copy of the 207 MiB test image (oci layout -> registry)   MiB/s
#   pull      skopeo copy back (registry -> oci layout)                        MiB/s
#   blob-put  curl PUT of a 200 MiB blob (monolithic upload)                   MiB/s
#   blob-get  curl GET of that blob                                            MiB/s
#   manifest  wrk: GET of the image manifest by tag, 32 connections           req/s
#   rss       the registry's peak RSS while a 1 GiB blob is pushed (fresh     MiB
#             process, peak counter reset just before the push)
# and prints the median of the runs per backend and the ratio of each
# backend to Distribution (higher is better, except rss).
#
# Usage: bench/registry.sh [-n RUNS] [-b "distribution disco"] [-d WRK_SECONDS] [-p PROFILE]
# (-p dev only checks the script quickly; numbers come from the default, release.)
# Needs: the test dependencies (sudo scripts/setup-test-deps), root (skopeo
# runs in a private mount namespace so it leaves no cache behind).
#
# Backends: distribution, disco (filesystem storage), embedded (disco on its
# embedded IPFS node), fscache / s3cache (embedded node with a filesystem or
# S3 (moto) cache serving pulls), s3redirect (S3 cache, blob GETs redirected
# to presigned URLs; curl and skopeo follow them).
# disco-auth / embedded-auth: disco / embedded with htpasswd access control
# (every client sends credentials): their ratio to the same backend without
# auth is printed too.
# Adding a backend: write
# `backend_<name>_bin` (prints the command line that serves a config file)
# and `backend_<name>_storage <dir>` (prints the YAML body of `storage:`),
# optionally `backend_<name>_extra <dir>` (top-level YAML) and
# `backend_<name>_creds` (user:password every client sends), then pass it in -b.
set -euo pipefail

cd "$(dirname "$0")/.."
repo_root=$(pwd)

runs=3
backends="distribution disco"
wrk_secs=10
profile=release
while getopts "n:b:d:p:h" opt; do
    case $opt in
        n) runs=$OPTARG ;;
        b) backends=$OPTARG ;;
        d) wrk_secs=$OPTARG ;;
        p) profile=$OPTARG ;;
        *) sed -n '2,28p' "$0"; exit 2 ;;
    esac
done

[ "$(id -u)" = 0 ] || { echo "bench/registry.sh: run as root (skopeo runs in a private mount namespace)" >&2; exit 1; }
for t in skopeo curl wrk jq unshare docker-registry htpasswd; do
    command -v "$t" >/dev/null || { echo "bench/registry.sh: $t missing: run sudo scripts/setup-test-deps" >&2; exit 1; }
done

target=${CARGO_TARGET_DIR:-$repo_root/target}
echo "building disco and mkimage ($profile)..." >&2
cargo build --profile "$profile" --quiet --bin disco --example mkimage
profile_dir=$profile
[ "$profile" = dev ] && profile_dir=debug
disco_bin=$target/$profile_dir/disco
mkimage=$target/$profile_dir/examples/mkimage

out=$repo_root/bench/out/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
work=$(mktemp -d /tmp/disco-bench-XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

log() { printf '%s\n' "$*" >&2; }

# --- backends -------------------------------------------------------------------------

backend_distribution_bin() { echo "docker-registry serve"; }
backend_distribution_storage() { printf '  filesystem:\n    rootdirectory: %s\n' "$1"; }

backend_disco_bin() { echo "$disco_bin serve --config"; }
backend_disco_storage() { printf '  filesystem:\n    rootdirectory: %s\n' "$1"; }

# disco on its embedded IPFS node (offline: no listen addresses, no mDNS).
embedded_yaml() {
    printf '  ipfs:\n    spooldirectory: %s/spool\n    embedded:\n      path: %s/ipfs\n      listen: []\n      mdns: false\n' "$1" "$1"
}
backend_embedded_bin() { echo "$disco_bin serve --config"; }
backend_embedded_storage() { embedded_yaml "$1"; }

# The embedded node with a secondary cache serving pulls (storage.ipfs.cache):
# a filesystem cache, an S3 cache (moto, started on demand) served through
# disco, and the S3 cache with blob GETs redirected to presigned URLs.
backend_fscache_bin() { echo "$disco_bin serve --config"; }
backend_fscache_storage() {
    embedded_yaml "$1"
    printf '    cache:\n      filesystem:\n        rootdirectory: %s/cache\n  redirect:\n    disable: true\n' "$1"
}
s3_cache_yaml() {
    local bucket
    bucket=b$(date +%s%N)
    "$venv/bin/python" - "$moto_endpoint" "$bucket" <<'PY'
import sys, boto3
boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
             aws_access_key_id="bench", aws_secret_access_key="bench").create_bucket(Bucket=sys.argv[2])
PY
    printf '    cache:\n      s3:\n        accesskey: bench\n        secretkey: bench\n        region: us-east-1\n        regionendpoint: %s\n        forcepathstyle: true\n        bucket: %s\n        secure: false\n' "$moto_endpoint" "$bucket"
}
backend_s3cache_bin() { echo "$disco_bin serve --config"; }
backend_s3cache_storage() {
    embedded_yaml "$1"
    s3_cache_yaml
    printf '  redirect:\n    disable: true\n'
}
backend_s3redirect_bin() { echo "$disco_bin serve --config"; }
backend_s3redirect_storage() {
    embedded_yaml "$1"
    s3_cache_yaml
}

# Access control: htpasswd (bcrypt, as `htpasswd -B` writes it) and the
# credentials every client sends.
bench_creds=bench:bench-password
htpasswd_yaml() {
    htpasswd -B -b -c "$1/htpasswd" bench bench-password 2>/dev/null
    printf 'auth:\n  htpasswd:\n    realm: bench\n    path: %s/htpasswd\n' "$1"
}
backend_disco-auth_bin() { backend_disco_bin; }
backend_disco-auth_storage() { backend_disco_storage "$1"; }
backend_disco-auth_extra() { htpasswd_yaml "$1"; }
backend_disco-auth_creds() { echo "$bench_creds"; }
backend_embedded-auth_bin() { backend_embedded_bin; }
backend_embedded-auth_storage() { backend_embedded_storage "$1"; }
backend_embedded-auth_extra() { htpasswd_yaml "$1"; }
backend_embedded-auth_creds() { echo "$bench_creds"; }

# creds_of NAME: the backend's user:password, or nothing.
creds_of() { if declare -F "backend_$1_creds" >/dev/null; then "backend_$1_creds"; fi; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

venv=$repo_root/tests/py/.venv
moto_endpoint=
case " $backends " in
    *" s3cache "* | *" s3redirect "*)
        [ -x "$venv/bin/moto_server" ] || { echo "bench/registry.sh: moto missing: run sudo scripts/setup-test-deps" >&2; exit 1; }
        moto_port=$(free_port)
        "$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
        pids+=("$!")
        moto_endpoint=http://127.0.0.1:$moto_port
        for _ in $(seq 1 200); do curl -fs -o /dev/null "$moto_endpoint/moto-api/" && break; sleep 0.1; done
        ;;
esac

# start_backend NAME DIR -> sets ADDR, PID
start_backend() {
    local name=$1 dir=$2
    rm -rf "$dir"; mkdir -p "$dir"
    ADDR=127.0.0.1:$(free_port)
    local debug=127.0.0.1:$(free_port)
    local extra=""
    if declare -F "backend_${name}_extra" >/dev/null; then extra=$("backend_${name}_extra" "$dir"); fi
    CREDS=$(creds_of "$name")
    CURL_AUTH=()
    [ -n "$CREDS" ] && CURL_AUTH=(-u "$CREDS")
    cat > "$dir/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
$(backend_"$name"_storage "$dir/storage")
  delete:
    enabled: true
http:
  addr: $ADDR
  secret: disco-bench-secret
  debug:
    addr: $debug
$extra
EOF
    # shellcheck disable=SC2046
    $(backend_"$name"_bin) "$dir/config.yml" >"$dir/log" 2>&1 &
    PID=$!
    pids+=("$PID")
    for _ in $(seq 1 600); do
        if curl -fs "${CURL_AUTH[@]+"${CURL_AUTH[@]}"}" -o /dev/null "http://$ADDR/v2/"; then return 0; fi
        kill -0 "$PID" 2>/dev/null || { log "$name exited:"; cat "$dir/log" >&2; exit 1; }
        sleep 0.05
    done
    log "$name not ready"; exit 1
}

stop_backend() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local keep=() p
    for p in "${pids[@]+"${pids[@]}"}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    pids=("${keep[@]+"${keep[@]}"}")
}

# skopeo in a private mount namespace with an empty blob-info cache, so every
# copy really transfers (no cross-run mounts) and nothing is left in
# /var/lib/containers/cache.
skopeo_fresh() {
    local cache
    cache=$(mktemp -d "$work/bic-XXXXXX")
    unshare --mount --propagation private -- sh -c \
        'mkdir -p /var/lib/containers/cache && mount --bind "$1" /var/lib/containers/cache && shift && exec "$@"' \
        sh "$cache" skopeo --insecure-policy "$@"
    rm -rf "$cache"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
mibps() { awk -v bytes="$1" -v secs="$2" 'BEGIN { printf "%.1f", bytes / 1048576 / secs }'; }

# upload_blob ADDR REPO FILE DIGEST -> prints seconds of the PUT
upload_blob() {
    local addr=$1 repo=$2 file=$3 digest=$4 loc t0 t1 code
    loc=$(curl -fs "${CURL_AUTH[@]+"${CURL_AUTH[@]}"}" -o /dev/null -D - -X POST "http://$addr/v2/$repo/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location" {print $2}')
    case $loc in http*) ;; *) loc="http://$addr$loc" ;; esac
    case $loc in *\?*) loc="$loc&digest=$digest" ;; *) loc="$loc?digest=$digest" ;; esac
    t0=$(now)
    code=$(curl -s "${CURL_AUTH[@]+"${CURL_AUTH[@]}"}" -o /dev/null -w '%{http_code}' -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' -T "$file" "$loc")
    t1=$(now)
    [ "$code" = 201 ] || { log "blob PUT answered $code"; exit 1; }
    elapsed "$t0" "$t1"
}

# --- inputs ---------------------------------------------------------------------------

log "writing test inputs to $work ..."
read -r image_digest image_bytes _ < <("$mkimage" image large "$work/large")
read -r blob_digest blob_bytes _ < <("$mkimage" blob 200 "$work/blob-200m" 200)
read -r gib_digest gib_bytes _ < <("$mkimage" blob 1024 "$work/blob-1g" 1024)
log "image $image_digest ($image_bytes bytes), blob $blob_digest, 1 GiB blob $gib_digest"

results=$out/raw.tsv
printf 'backend\trun\tmetric\tvalue\n' > "$results"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$results"; }

# --- runs -----------------------------------------------------------------------------

for run in $(seq 1 "$runs"); do
    for b in $backends; do
        log "run $run/$runs: $b"
        start_backend "$b" "$work/$b"
        addr=$ADDR

        dest_creds=() src_creds=() wrk_auth=()
        if [ -n "$CREDS" ]; then
            dest_creds=(--dest-creds "$CREDS") src_creds=(--src-creds "$CREDS")
            wrk_auth=(-H "Authorization: Basic $(printf %s "$CREDS" | base64 -w0)")
        fi
        t0=$(now)
        skopeo_fresh copy -q --preserve-digests --dest-tls-verify=false "${dest_creds[@]+"${dest_creds[@]}"}" "oci:$work/large:latest" "docker://$addr/bench/large:v1" >/dev/null
        t1=$(now)
        record "$b" "$run" push "$(mibps "$image_bytes" "$(elapsed "$t0" "$t1")")"

        rm -rf "$work/pulled"
        t0=$(now)
        skopeo_fresh copy -q --preserve-digests --src-tls-verify=false "${src_creds[@]+"${src_creds[@]}"}" "docker://$addr/bench/large:v1" "oci:$work/pulled:latest" >/dev/null
        t1=$(now)
        record "$b" "$run" pull "$(mibps "$image_bytes" "$(elapsed "$t0" "$t1")")"
        rm -rf "$work/pulled"

        secs=$(upload_blob "$addr" bench/blob "$work/blob-200m" "$blob_digest")
        record "$b" "$run" blob-put "$(mibps "$blob_bytes" "$secs")"

        # Timed GET to /dev/null (sha256sum would be the bottleneck), then an
        # untimed GET whose bytes are checked.
        t0=$(now)
        curl -fsL "${CURL_AUTH[@]+"${CURL_AUTH[@]}"}" -o /dev/null "http://$addr/v2/bench/blob/blobs/$blob_digest"
        t1=$(now)
        record "$b" "$run" blob-get "$(mibps "$blob_bytes" "$(elapsed "$t0" "$t1")")"
        got=$(curl -fsL "${CURL_AUTH[@]+"${CURL_AUTH[@]}"}" "http://$addr/v2/bench/blob/blobs/$blob_digest" | sha256sum | cut -d' ' -f1)
        [ "sha256:$got" = "$blob_digest" ] || { log "blob GET returned wrong bytes"; exit 1; }

        rps=$(wrk -t1 -c32 -d"${wrk_secs}s" "${wrk_auth[@]+"${wrk_auth[@]}"}" \
            -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
            "http://$addr/v2/bench/large/manifests/v1" | awk '/^Requests\/sec:/ {print $2}')
        record "$b" "$run" manifest "$rps"
        stop_backend "$PID"

        # Peak RSS during a 1 GiB push, in a fresh process.
        start_backend "$b" "$work/$b"
        echo 5 > "/proc/$PID/clear_refs" 2>/dev/null || true
        upload_blob "$ADDR" bench/gib "$work/blob-1g" "$gib_digest" >/dev/null
        hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$PID/status")
        record "$b" "$run" rss "$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')"
        stop_backend "$PID"
        rm -rf "$work/$b"
    done
done

# --- summary --------------------------------------------------------------------------

median() { # backend metric
    awk -F'\t' -v b="$1" -v m="$2" '$1==b && $3==m {print $4}' "$results" | sort -g |
        awk '{v[NR]=$1} END { if (NR==0) print "-"; else if (NR%2) print v[(NR+1)/2]; else printf "%.1f\n", (v[NR/2]+v[NR/2+1])/2 }'
}

{
    echo "# registry benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ), $runs runs, medians"
    echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
    echo "# distribution: $(docker-registry --version 2>/dev/null | awk '{print $3}'), disco: $("$disco_bin" --version 2>/dev/null | head -1)"
    header="metric"
    for b in $backends; do header="$header\t$b"; done
    for b in $backends; do [ "$b" = distribution ] || header="$header\t$b/distribution"; done
    printf '%b\n' "$header"
    for m in push pull blob-put blob-get manifest rss; do
        case $m in manifest) unit="req/s" ;; rss) unit="MiB" ;; *) unit="MiB/s" ;; esac
        line="$m ($unit)"
        for b in $backends; do line="$line\t$(median "$b" "$m")"; done
        base=$(median distribution "$m")
        for b in $backends; do
            [ "$b" = distribution ] && continue
            line="$line\t$(awk -v x="$(median "$b" "$m")" -v y="$base" 'BEGIN { if (y+0 == 0 || x == "-") print "-"; else printf "%.2fx", x / y }')"
        done
        printf '%b\n' "$line"
    done
    # Access control's cost: each *-auth backend against the same backend
    # without auth, in the same run.
    for b in $backends; do
        case $b in *-auth) ;; *) continue ;; esac
        plain=${b%-auth}
        case " $backends " in *" $plain "*) ;; *) continue ;; esac
        line="$b/$plain"
        for m in push pull blob-put blob-get manifest rss; do
            line="$line\t$m $(awk -v x="$(median "$b" "$m")" -v y="$(median "$plain" "$m")" 'BEGIN { if (y+0 == 0 || x == "-") print "-"; else printf "%.3fx", x / y }')"
        done
        printf '%b\n' "$line"
    done
} > "$out/summary.txt"
awk -F'\t' '{ for (i = 1; i <= NF; i++) printf (i == 1 ? "%-18s" : "%22s"), $i; print "" }' "$out/summary.txt"
log "raw results: $results"
