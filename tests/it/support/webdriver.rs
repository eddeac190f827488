//! A small WebDriver client driving headless Debian Chromium through
//! `chromedriver` (W3C WebDriver over HTTP, with reqwest). Each [`Browser`]
//! runs its own chromedriver on a free loopback port and a fresh, empty
//! Chromium profile; dropping it ends the session and stops chromedriver
//! by its PID.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::registry::free_port;

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

/// A found element.
#[derive(Debug, Clone)]
pub struct Element(String);

/// True if Chromium and chromedriver are installed (tests/deps/apt-web.txt).
pub fn available() -> bool {
    std::path::Path::new("/usr/bin/chromium").exists()
        && std::path::Path::new("/usr/bin/chromedriver").exists()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a
    /// `width`×`height` window.
    pub fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("chromedriver-{port}.log"));
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver)");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("reqwest client");
        let profile = tempfile::Builder::new()
            .prefix("disco-chromium-")
            .tempdir()
            .unwrap();
        let mut b = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            rt,
            http,
            _profile: profile,
        };
        b.wait_ready();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--no-proxy-server",
            &format!("--window-size={width},{height}"),
            &format!("--user-data-dir={}", b._profile.path().display()),
        ];
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args }
                }
            }
        });
        let v = b.call("POST", "/session", Some(caps));
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        b
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = format!("{}/status", self.base);
            let ready = self.rt.block_on(async {
                match self.http.get(&url).send().await {
                    Ok(r) => r
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v["value"]["ready"].as_bool())
                        .unwrap_or(false),
                    Err(_) => false,
                }
            });
            if ready {
                return;
            }
            if let Ok(Some(status)) = self.driver.try_wait() {
                panic!("chromedriver exited: {status}");
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One WebDriver command: its HTTP status and `value`.
    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        self.rt.block_on(async {
            let mut req = self.http.request(m, &url);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let r = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (status, v["value"].clone())
        })
    }

    /// One WebDriver command; returns `value`, panicking on an error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.try_call(method, path, body);
        assert!(status < 300, "WebDriver {method} {path}: {status} {v}");
        v
    }

    fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Loads `url` and waits for it.
    pub fn goto(&self, url: &str) {
        self.call("POST", &self.s("/url"), Some(json!({ "url": url })));
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.call("GET", &self.s("/url"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page title.
    pub fn title(&self) -> String {
        self.call("GET", &self.s("/title"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Every element matching a CSS selector.
    pub fn all(&self, css: &str) -> Vec<Element> {
        let v = self.call(
            "POST",
            &self.s("/elements"),
            Some(json!({ "using": "css selector", "value": css })),
        );
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|s| Element(s.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The one element matching `css` (panics if none).
    pub fn find(&self, css: &str) -> Element {
        self.all(css)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element {css:?} on {}", self.url()))
    }

    /// The rendered text of an element.
    pub fn text(&self, e: &Element) -> String {
        self.call("GET", &self.s(&format!("/element/{}/text", e.0)), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Texts of every element matching `css`.
    pub fn texts(&self, css: &str) -> Vec<String> {
        self.all(css).iter().map(|e| self.text(e)).collect()
    }

    /// An element's attribute.
    pub fn attr(&self, e: &Element, name: &str) -> Option<String> {
        self.call(
            "GET",
            &self.s(&format!("/element/{}/attribute/{name}", e.0)),
            None,
        )
        .as_str()
        .map(str::to_string)
    }

    /// Types into an input.
    pub fn type_text(&self, e: &Element, text: &str) {
        self.call(
            "POST",
            &self.s(&format!("/element/{}/value", e.0)),
            Some(json!({ "text": text })),
        );
    }

    /// Clicks a link or a submit button and waits until the page it
    /// loads has replaced the current one (the old document's root element
    /// is stale), so later lookups never see the old page.
    pub fn click(&self, e: &Element) {
        let old = self.find("html");
        self.call(
            "POST",
            &self.s(&format!("/element/{}/click", e.0)),
            Some(json!({})),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, _) =
                self.try_call("GET", &self.s(&format!("/element/{}/name", old.0)), None);
            if status == 404 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the click did not load a new page (still on {})",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The page's source as the browser has it.
    pub fn source(&self) -> String {
        self.call("GET", &self.s("/source"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Cookies of the current page (WebDriver cookie objects).
    pub fn cookies(&self) -> Vec<Value> {
        self.call("GET", &self.s("/cookie"), None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A PNG screenshot of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let v = self.call("GET", &self.s("/screenshot"), None);
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("screenshot base64")
    }

    /// Saves a screenshot as `dir/name`.
    pub fn save_screenshot(&self, dir: &std::path::Path, name: &str) -> PathBuf {
        let png = self.screenshot();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(20), self.http.delete(&url).send()).await
            });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
