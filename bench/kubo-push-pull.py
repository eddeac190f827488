#!/usr/bin/env python3
"""Push and pull of a ~207 MiB image with skopeo: disco on the filesystem
driver next to disco on `storage.ipfs` (Kubo RPC backend, js-ipfs daemon),
in the same run. Reports wall times, their ratio, and the CPU seconds of
disco and of the daemon (from /proc), so one can see whether the IPFS path
is limited by the daemon or by disco.

Usage: bench/kubo-push-pull.py [--mib 207] [--disco PATH]
Needs: skopeo, node + tests/js/jsipfs (npm ci), a built disco binary.
Everything runs on 127.0.0.1 in a temp dir; every process is stopped by PID.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JSIPFS = os.path.join(ROOT, "tests", "js", "jsipfs")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """utime + stime of a process and its reaped children."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICK


def make_image(dir_, mib):
    """An OCI layout with incompressible layers summing to about `mib` MiB."""
    blobs = os.path.join(dir_, "blobs", "sha256")
    os.makedirs(blobs)

    def put(data):
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, d), "wb") as f:
            f.write(data)
        return d

    layers, diff_ids, left, i = [], [], mib, 0
    while left > 0:
        size = min(left, 64) * 1024 * 1024
        left -= size // (1024 * 1024)
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            info = tarfile.TarInfo(f"layer{i}.bin")
            info.size = size
            tar.addfile(info, io.BytesIO(os.urandom(size)))
        raw = raw.getvalue()
        gz = gzip.compress(raw, compresslevel=1, mtime=0)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": "sha256:" + put(gz), "size": len(gz)})
        i += 1
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + put(config), "size": len(config)},
        "layers": layers}).encode()
    md = put(manifest)
    with open(os.path.join(dir_, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(dir_, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + md, "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}, f)
    return sum(l["size"] for l in layers)


class Proc:
    def __init__(self, args, log, env=None, cwd=None):
        self.log = log
        self.p = subprocess.Popen(args, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env, cwd=cwd)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()

    def wait_for(self, predicate, what, timeout=240):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.p.poll() is not None:
                sys.exit(f"{what} exited:\n" + open(self.log).read()[-3000:])
            if predicate():
                return
            time.sleep(0.1)
        sys.exit(f"{what} not ready after {timeout}s")


def start_jsipfs(tmp):
    repo = os.path.join(tmp, "jsipfs-repo")
    env = dict(os.environ, IPFS_PATH=repo, NO_UPDATE_NOTIFIER="1")
    node = ["node", os.path.join(JSIPFS, "jsipfs.mjs")]
    subprocess.run(node + ["init", "--profile", "test"], env=env, cwd=JSIPFS, check=True,
                   stdout=subprocess.DEVNULL)
    ports = [free_port() for _ in range(4)]
    cfg_path = os.path.join(repo, "config")
    cfg = json.load(open(cfg_path))
    a = cfg["Addresses"]
    a["API"], a["Gateway"], a["RPC"] = (f"/ip4/127.0.0.1/tcp/{p}" for p in ports[:3])
    a["Swarm"] = [f"/ip4/127.0.0.1/tcp/{ports[3]}"]
    cfg["Routing"]["Type"] = "none"
    cfg["Bootstrap"] = []
    json.dump(cfg, open(cfg_path, "w"))
    log = os.path.join(tmp, "ipfs.log")
    d = Proc(node + ["daemon", "--enable-preload=false"], log, env=env, cwd=JSIPFS)
    d.wait_for(lambda: "Daemon is ready" in open(log).read(), "js-ipfs")
    return d, f"http://127.0.0.1:{ports[0]}"


def start_disco(disco, tmp, name, storage):
    dir_ = os.path.join(tmp, name)
    os.makedirs(dir_)
    port, debug = free_port(), free_port()
    cfg = os.path.join(dir_, "config.yml")
    with open(cfg, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
                f"storage:\n{storage}http:\n  addr: 127.0.0.1:{port}\n"
                f"  debug:\n    addr: 127.0.0.1:{debug}\n")
    env = dict(os.environ, HOME=dir_)
    p = Proc([disco, "serve", "--config", cfg], os.path.join(dir_, "disco.log"), env=env)

    def ready():
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return True
        except OSError:
            return False
    p.wait_for(ready, f"disco ({name})", 60)
    return p, f"127.0.0.1:{port}"


def skopeo(*args):
    subprocess.run(["skopeo", "--insecure-policy", *args], check=True,
                   stdout=subprocess.DEVNULL)


def run(disco, image, tmp, name, storage, daemon=None):
    reg, host = start_disco(disco, tmp, name, storage)
    procs = [("disco", reg.p.pid)] + ([("ipfs daemon", daemon.p.pid)] if daemon else [])
    result = {}
    for phase, args in [
        ("push", ["copy", "--dest-tls-verify=false", f"oci:{image}:v1",
                  f"docker://{host}/bench/app:v1"]),
        ("pull", ["copy", "--src-tls-verify=false", f"docker://{host}/bench/app:v1",
                  f"oci:{os.path.join(tmp, name + '-pulled')}:v1"]),
    ]:
        cpu0 = {n: cpu_seconds(pid) for n, pid in procs}
        t0 = time.monotonic()
        skopeo(*args)
        wall = time.monotonic() - t0
        cpu = {n: cpu_seconds(pid) - cpu0[n] for n, pid in procs}
        result[phase] = {"wall": wall, "cpu": cpu}
    reg.stop()
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=207)
    default = os.path.join(ROOT, "target", "release", "disco")
    if not os.path.exists(default):
        default = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                               "release", "disco")
    ap.add_argument("--disco", default=default)
    args = ap.parse_args()
    if not os.path.exists(args.disco):
        sys.exit(f"no disco binary at {args.disco}: cargo build --release (or --disco PATH)")
    with tempfile.TemporaryDirectory(prefix="disco-bench-kubo-") as tmp:
        image = os.path.join(tmp, "image")
        size = make_image(image, args.mib)
        print(f"image: {size / 2**20:.1f} MiB of layers")
        daemon, api = start_jsipfs(tmp)
        try:
            fs = run(args.disco, image, tmp, "filesystem",
                     f"  filesystem:\n    rootdirectory: {os.path.join(tmp, 'fs-store')}\n")
            ipfs = run(args.disco, image, tmp, "ipfs",
                       f"  ipfs:\n    rootdirectory: /bench\n    router:\n      nodes:\n"
                       f"        - url: {api}\n", daemon)
        finally:
            daemon.stop()
    out = {"image_mib": size / 2**20, "filesystem": fs, "ipfs": ipfs}
    for phase in ("push", "pull"):
        f, i = fs[phase], ipfs[phase]
        mbps = lambda r: size / 2**20 / r["wall"]
        print(f"{phase}: filesystem {f['wall']:.2f}s ({mbps(f):.0f} MiB/s), "
              f"ipfs {i['wall']:.2f}s ({mbps(i):.0f} MiB/s), ratio {i['wall'] / f['wall']:.2f}x; "
              f"CPU s over the ipfs {phase}: " +
              ", ".join(f"{n} {c:.2f} ({100 * c / i['wall']:.0f}% of wall)"
                        for n, c in i["cpu"].items()))
    os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "out", "kubo-push-pull.json"), "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
