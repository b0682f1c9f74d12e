//! LiteLLM's proxy as a process, for benches comparing Paddock with it on
//! the same fake provider.
//!
//! The proxy is the `litellm` executable `PADDOCK_BENCH_LITELLM` names (e.g.
//! a virtualenv's `bin/litellm` after `pip install 'litellm[proxy]'`), run
//! with one model `r` → `openai/m` at the fake and a master key, so it
//! checks a key as Paddock does. It is one process (uvicorn in it, no
//! workers), stopped by its PID.

// Each bench includes this file and uses a part of it.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running LiteLLM proxy.
pub struct LiteLlm {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The master key its requests carry.
    pub key: String,
    _dir: tempfile::TempDir,
}

impl LiteLlm {
    /// The proxy `PADDOCK_BENCH_LITELLM` names, routing model `r` to the
    /// OpenAI-style fake at `fake_url`, once it answers; `None` when the
    /// variable is unset.
    pub fn start(fake_url: &str) -> Option<LiteLlm> {
        let program = std::env::var("PADDOCK_BENCH_LITELLM").ok().filter(|p| !p.is_empty())?;
        let dir = tempfile::tempdir().expect("a temporary folder");
        let config = format!(
            "model_list:\n  - model_name: r\n    litellm_params:\n      model: openai/m\n      api_base: {fake_url}/v1\n      api_key: fake\n"
        );
        std::fs::write(dir.path().join("litellm.yaml"), config).expect("a temporary folder is writable");
        // A port the OS picks, given up just before the proxy takes it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port on 127.0.0.1")
            .port();
        let key = format!("sk-bench-{}", blake3::hash(format!("{port}{:?}", Instant::now()).as_bytes()).to_hex());
        let child = Command::new(&program)
            .current_dir(dir.path())
            .args(["--config", "litellm.yaml", "--host", "127.0.0.1", "--port", &port.to_string()])
            .env("LITELLM_MASTER_KEY", &key)
            .env("LITELLM_LOG", "ERROR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("PADDOCK_BENCH_LITELLM={program}: cannot start it: {e}"));
        let proxy = LiteLlm { child, url: format!("http://127.0.0.1:{port}"), key, _dir: dir };
        proxy.wait_ready(&program);
        Some(proxy)
    }

    /// Waits up to two minutes for `/health/liveliness` to answer.
    fn wait_ready(&self, program: &str) {
        let started = Instant::now();
        let address = self.url.trim_start_matches("http://").to_string();
        while started.elapsed() < Duration::from_secs(120) {
            if let Ok(mut stream) = std::net::TcpStream::connect(&address) {
                use std::io::{Read, Write};
                let ask = format!("GET /health/liveliness HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
                let mut answer = String::new();
                if stream.write_all(ask.as_bytes()).is_ok()
                    && stream.read_to_string(&mut answer).is_ok()
                    && answer.starts_with("HTTP/1.1 200")
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("{program} did not answer at {}/health/liveliness within 120 s", self.url);
    }

    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for LiteLlm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
