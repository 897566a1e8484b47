//! A small W3C WebDriver client over `reqwest`, enough to drive headless
//! Chromium through `chromedriver` from the page tests: sessions, navigation,
//! CSS lookups, clicks, keys, scripts and screenshots.
//!
//! Written here rather than taken from a WebDriver crate because the crates'
//! HTTP stacks switch on features of dependencies Holochain shares, which
//! forces a full rebuild of Holochain for the test crate; the protocol
//! itself is a handful of JSON calls.

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver (package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The End key, as WebDriver sends it (moves a range input to its maximum).
pub const KEY_END: &str = "\u{E010}";
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver this process started, on a free port; killed (by its own
/// pid) when dropped.
pub struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    /// Starts chromedriver and waits until it listens. Panics, saying how to
    /// install them, when the browser or driver is missing.
    pub async fn start() -> Driver {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: `cargo xtask test` installs it, or run \
                 `apt-get install -y chromium chromium-driver`"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not listen within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Opens a headless Chromium session.
    pub async fn browser(&self) -> Browser {
        let http = reqwest::Client::new();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1000,1500"],
            },
        }}});
        let v = answer(http.post(format!("{}/session", self.url)).json(&caps))
            .await
            .expect("a headless chromium session opens");
        let id = v["sessionId"]
            .as_str()
            .expect("the session has an id")
            .to_string();
        Browser {
            http,
            base: format!("{}/session/{id}", self.url),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn answer(req: reqwest::RequestBuilder) -> Result<Value, String> {
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| e.to_string())?;
    let value = body.get("value").cloned().unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!(
            "{status}: {} {}",
            value["error"].as_str().unwrap_or(""),
            value["message"].as_str().unwrap_or("")
        ));
    }
    Ok(value)
}

/// One browser session.
pub struct Browser {
    http: reqwest::Client,
    base: String,
}

/// An element of the current page (its WebDriver reference).
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        answer(self.http.post(format!("{}{path}", self.base)).json(&body)).await
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        answer(self.http.get(format!("{}{path}", self.base))).await
    }

    /// Navigates and waits for the page to load.
    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.post("/url", json!({ "url": url })).await.map(|_| ())
    }

    /// The current page's URL.
    pub async fn url(&self) -> Result<String, String> {
        Ok(self.get("/url").await?.as_str().unwrap_or("").to_string())
    }

    /// Reloads the page.
    pub async fn refresh(&self) -> Result<(), String> {
        self.post("/refresh", json!({})).await.map(|_| ())
    }

    /// The first element matching a CSS selector.
    pub async fn find(&self, css: &str) -> Result<Element, String> {
        let v = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await?;
        v[ELEMENT_KEY]
            .as_str()
            .map(|s| Element(s.to_string()))
            .ok_or_else(|| format!("no element reference for {css}"))
    }

    /// Waits up to `secs` for an element to appear.
    pub async fn wait_for(&self, css: &str, secs: u64) -> Result<Element, String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match self.find(css).await {
                Ok(e) => return Ok(e),
                Err(e) if tokio::time::Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// The rendered text of an element.
    pub async fn text(&self, e: &Element) -> Result<String, String> {
        Ok(self
            .get(&format!("/element/{}/text", e.0))
            .await?
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    /// Clicks an element (as a user would; forms submit and pages load).
    pub async fn click(&self, e: &Element) -> Result<(), String> {
        self.post(&format!("/element/{}/click", e.0), json!({}))
            .await
            .map(|_| ())
    }

    /// Types keys into an element (focusing it first).
    pub async fn send_keys(&self, e: &Element, keys: &str) -> Result<(), String> {
        self.post(&format!("/element/{}/value", e.0), json!({ "text": keys }))
            .await
            .map(|_| ())
    }

    /// Runs a script in the page and returns its result.
    pub async fn execute(&self, script: &str) -> Result<Value, String> {
        self.post("/execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    /// A PNG screenshot of the viewport.
    pub async fn screenshot(&self) -> Result<Vec<u8>, String> {
        use base64::Engine;
        let b64 = self.get("/screenshot").await?;
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or(""))
            .map_err(|e| e.to_string())
    }

    /// Ends the session (closing the browser).
    pub async fn close(self) -> Result<(), String> {
        answer(self.http.delete(&self.base)).await.map(|_| ())
    }
}
