//! The blackboard under a hostile tenant's writes and watches, through a
//! real `paddock serve` with a durable board: rewriting one large key keeps
//! the file within the tenant's quota plus its bounded history, watch
//! answers stay within their byte bound, host memory stays flat, and another
//! tenant's reads keep being answered meanwhile.

use crate::util::{Served, key, serve};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::{Duration, Instant};

const VALUE: usize = 900 * 1024;

async fn call(served: &Served, method: Method, path: &str, token: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .request(method, format!("http://{}{path}", served.address))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null))
}

/// The host's resident memory, in bytes, from `/proc/PID/status`.
fn rss(served: &Served) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", served.child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewriting_one_large_key_and_watching_its_history_keep_file_and_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[host]\nplugin-state = \"memory\"\nledger = \"memory\"\ndefault-tenant = \"acme\"\n\
                  [blackboard]\nstore = \"durable\"\n\
                  [tenants.acme]\nagents = []\n[tenants.mallory]\nagents = []\nblackboard = { max-bytes = \"1MiB\" }\n";
    std::fs::write(dir.path().join("paddock.toml"), config).unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    let (mallory, acme) = (key(dir.path(), "mallory", "operate"), key(dir.path(), "acme", "operate"));
    paddock::gateway::install_crypto();
    let served = serve(dir.path(), &[]);
    let (status, _) = call(&served, Method::PUT, "/v1/board/keys/note", &acme, b"acme's".to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    let started_rss = rss(&served);

    // 100 rewrites of one 900 KiB key: 88 MiB written, under a 1 MiB quota.
    for i in 0..100u8 {
        let (status, body) =
            call(&served, Method::PUT, "/v1/board/keys/big", &mallory, vec![b'a' + i % 26; VALUE]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let files = [".paddock/blackboard.sqlite", ".paddock/blackboard.sqlite-wal"];
    let size: u64 = files.iter().map(|f| std::fs::metadata(dir.path().join(f)).map_or(0, |m| m.len())).sum();
    // The live value, 16 MiB of history, pages freed for reuse and the write-ahead log.
    assert!(size < 40 << 20, "the board file holds {size} bytes after 88 MiB of rewrites");

    // history-bytes (16 MiB) keeps the last 18 changes of 900 KiB.
    let (status, body) = call(&served, Method::GET, "/v1/board/history?after=81", &mallory, Vec::new()).await;
    assert_eq!((status, body["error"]["kind"].as_str()), (StatusCode::GONE, Some("lagged")), "{body}");
    // Watching from the oldest kept, three at once: each answer stops at 4 MiB.
    let watches = (0..3).map(|_| call(&served, Method::GET, "/v1/board/history?after=82", &mallory, Vec::new()));
    for (status, body) in futures_util::future::join_all(watches).await {
        assert_eq!(status, StatusCode::OK, "{body}");
        let revisions: Vec<u64> = body.as_array().unwrap().iter().map(|c| c["revision"].as_u64().unwrap()).collect();
        assert_eq!(revisions, [83, 84, 85, 86], "four changes of 900 KiB fit in 4 MiB, five do not");
    }
    let grown = rss(&served).saturating_sub(started_rss);
    assert!(grown < 64 << 20, "host memory grew by {grown} bytes");

    // Another tenant is answered meanwhile, and sees only its own board.
    let asked = Instant::now();
    let (status, body) = call(&served, Method::GET, "/v1/board/keys/note", &acme, Vec::new()).await;
    assert_eq!((status, body["value"].as_str()), (StatusCode::OK, Some("acme's")));
    assert!(asked.elapsed() < Duration::from_millis(500), "{:?}", asked.elapsed());
    let (status, _) = call(&served, Method::GET, "/v1/board/keys/big", &acme, Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
