//! A small WebDriver client over reqwest, driving a real headless Chromium
//! through `chromedriver` (Debian's `chromium` and `chromium-driver`, which
//! `.ci/run` installs). Missing, a test fails when CI is set, and otherwise
//! skips saying what to install.

use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The element key of the WebDriver protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long a wait for something on the page lasts.
const PATIENCE: Duration = Duration::from_secs(20);

/// An HTTP client (reqwest with the host's TLS crypto installed).
pub fn client() -> reqwest::Client {
    paddock::gateway::install_crypto();
    reqwest::Client::new()
}

/// A headless Chromium, driven through its own chromedriver process.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    base: String,
}

/// Where a program is, if on PATH or at one of `known`.
fn program(names: &[&str]) -> Option<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file()).map(|p| p.display().to_string())
    })
}

impl Browser {
    /// A new browser, or `None` (outside CI) when Chromium or chromedriver is missing.
    pub async fn start() -> Option<Browser> {
        let (Some(chromium), Some(driver)) = (program(&["chromium", "chromium-browser"]), program(&["chromedriver"]))
        else {
            let why = "headless Chromium is missing: install it with `apt-get install chromium chromium-driver`";
            assert!(std::env::var_os("CI").is_none(), "CI is set, so this is a failure: {why}");
            eprintln!("SKIPPED a console test (CI is not set): {why}");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = client();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer on port {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"],
        }}}});
        let made: Value =
            http.post(format!("{base}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let session = made["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {made}")).to_string();
        let base = format!("{base}/session/{session}");
        Some(Browser { driver, http, session, base })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let request = self.http.request(method, format!("{}{path}", self.base));
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        answer["value"].clone()
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    /// The first element `css` matches now, if any.
    async fn find_now(&self, css: &str) -> Option<String> {
        let found =
            self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        found[ELEMENT].as_str().map(str::to_string)
    }

    /// The first element `css` matches whose text `holds`, waiting for it.
    pub async fn wait_for(&self, css: &str, holds: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(element) = self.find_now(css).await
                && holds(&self.text(&element).await)
            {
                return element;
            }
            if Instant::now() > deadline {
                let page = self.call(reqwest::Method::GET, "/source", None).await;
                panic!(
                    "nothing matching {css:?} as wanted after {PATIENCE:?}; the page:\n{}",
                    page.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first element `css` matches, waiting for it.
    pub async fn element(&self, css: &str) -> String {
        self.wait_for(css, |_| true).await
    }

    pub async fn text(&self, element: &str) -> String {
        let text = self.call(reqwest::Method::GET, &format!("/element/{element}/text"), None).await;
        text.as_str().unwrap_or_default().to_string()
    }

    pub async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/click"), Some(json!({}))).await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/value"), Some(json!({ "text": text }))).await;
    }

    /// Runs `script` in the page and returns what it returns.
    pub async fn execute(&self, script: &str) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    /// Writes the page as a PNG to `<target tmp>/console-screenshots/NAME.png`.
    pub async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).unwrap();
        let folder = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(format!("{name}.png")), bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes its Chromium (a plain blocking request:
        // no runtime to await on in a drop); then chromedriver, by its own pid.
        use std::io::{Read, Write};
        let address = self.base.trim_start_matches("http://").split('/').next().unwrap_or_default().to_string();
        if let Ok(mut stream) = std::net::TcpStream::connect(&address) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = stream.write_all(request.as_bytes()).and_then(|()| stream.read_to_end(&mut Vec::new()));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
