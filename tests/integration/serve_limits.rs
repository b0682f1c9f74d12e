//! `paddock serve` against clients that hold connections open, send slowly,
//! send too much, or speak plain HTTP to TLS: the limits hold and everyone
//! else is still served. And the process's own memory: no huge pages.

use crate::util::*;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A host with `serve` settings and no keys (these tests are about
/// connections, not callers).
fn setup(dir: &Path, section: &str) -> Served {
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::write(
        dir.join("paddock.toml"),
        format!("[host]\nledger = \"memory\"\nplugin-state = \"memory\"\n[serve]\nauth = \"none\"\n{section}"),
    )
    .unwrap();
    paddock::gateway::install_crypto();
    serve(dir, &[])
}

/// A connection to `to` from the loopback address `from` (all of 127/8 is
/// this machine's, so each stands for another client).
async fn connect_from(from: [u8; 4], to: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(to.parse().unwrap()).await.unwrap()
}

/// What the server sends before it closes `stream`, waiting at most `limit`;
/// `None` if it is still open then.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| String::from_utf8_lossy(&got).into_owned())
}

const HALF_A_HEAD: &[u8] = b"GET /v1/health HTTP/1.1\r\nhost: paddock\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_delay_no_one_and_close_at_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let served = setup(dir.path(), "max-connections = 64\nmax-connections-per-source = 16\nheader-timeout = \"1s\"\n");
    let opened = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..16 {
        let mut stream = connect_from([127, 0, 0, 2], &served.address).await;
        stream.write_all(HALF_A_HEAD).await.unwrap();
        slow.push(stream);
    }
    let mut over = connect_from([127, 0, 0, 2], &served.address).await;
    let refused = until_closed(&mut over, Duration::from_secs(1)).await.expect("closed at once");
    assert!(refused.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{refused:?}");

    let client = reqwest::Client::new();
    let asked = Instant::now();
    let health = client.get(format!("http://{}/v1/health", served.address)).send().await.unwrap();
    let took = asked.elapsed();
    assert_eq!(health.status().as_u16(), 200);
    assert!(took < Duration::from_millis(100), "a normal request took {took:?} beside 16 half-open connections");

    for stream in &mut slow {
        let left = Duration::from_secs(3).saturating_sub(opened.elapsed());
        assert!(until_closed(stream, left).await.is_some(), "a half-open connection outlived the header timeout");
    }
    assert!(opened.elapsed() >= Duration::from_millis(900), "closed before the timeout: {:?}", opened.elapsed());
    // On a new connection: the host closes an idle kept-alive one at the header
    // timeout too, and reusing it as it closes would be reset.
    let again = reqwest::Client::new().get(format!("http://{}/v1/health", served.address)).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_a_new_one_is_refused_until_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let served = setup(dir.path(), "max-connections = 4\nmax-connections-per-source = 4\nheader-timeout = \"1s\"\n");
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from([127, 0, 0, 2], &served.address).await);
    }
    let mut fifth = connect_from([127, 0, 0, 3], &served.address).await;
    let refused = until_closed(&mut fifth, Duration::from_secs(1)).await.expect("closed at once");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused:?}");
    drop(held);
    let client = reqwest::Client::new();
    let mut status = 0;
    for _ in 0..50 {
        match client.get(format!("http://{}/v1/health", served.address)).send().await {
            Ok(r) if r.status().is_success() => {
                status = 200;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert_eq!(status, 200, "the places of closed connections are given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_over_max_header_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let served = setup(dir.path(), "");
    let client = reqwest::Client::new();
    let big = "x".repeat(20 * 1024);
    let response = client.get(format!("http://{}/v1/health", served.address)).header("x-big", big).send().await;
    assert_eq!(response.map(|r| r.status().as_u16()).ok(), Some(431));
    let small = client.get(format!("http://{}/v1/health", served.address)).send().await.unwrap();
    assert_eq!(small.status().as_u16(), 200);
}

/// A self-signed certificate for `localhost` and its key, as PEM.
fn certificate() -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (made.cert.pem(), made.signing_key.serialize_pem())
}

fn trusting(cert: &str, address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .resolve("localhost", address.parse().unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https_refuses_plain_http_and_takes_a_new_certificate_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    let (cert, private) = certificate();
    std::fs::write(tls.join("cert.pem"), &cert).unwrap();
    std::fs::write(tls.join("key.pem"), &private).unwrap();
    paddock::gateway::install_crypto();
    std::fs::write(
        dir.path().join("paddock.toml"),
        "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\n[serve]\ntls = { cert = \"tls/cert.pem\", key = \"tls/key.pem\" }\n",
    )
    .unwrap();
    let token = key(dir.path(), "default", "run");
    let served = serve(dir.path(), &[]);
    let port = served.address.rsplit(':').next().unwrap();
    let secure = trusting(&cert, &served.address);
    let health = secure.get(format!("https://localhost:{port}/v1/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let runs = secure.get(format!("https://localhost:{port}/v1/runs")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(runs.status().as_u16(), 200);
    let plain = reqwest::Client::new().get(format!("http://{}/v1/health", served.address)).send().await;
    assert!(plain.is_err(), "plain HTTP to the TLS port was answered: {plain:?}");
    let listed = TestCommand::new(dir.path(), &["plugins", "list"]).run();
    assert!(listed.stdout.starts_with(&format!("served by the host at https://127.0.0.1:{port}")), "{}", listed.stdout);

    // A new certificate: written key first, then the certificate, as a renewal would.
    let (renewed, renewed_key) = certificate();
    std::fs::write(tls.join("key.pem"), &renewed_key).unwrap();
    std::fs::write(tls.join("cert.pem"), &renewed).unwrap();
    let fresh = trusting(&renewed, &served.address);
    let since = Instant::now();
    loop {
        if let Ok(r) = fresh.get(format!("https://localhost:{port}/v1/health")).send().await {
            assert_eq!(r.status().as_u16(), 200);
            break;
        }
        assert!(since.elapsed() < Duration::from_secs(5), "the renewed certificate is not served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_the_same_data_folder_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let served = setup(dir.path(), "");
    let second = TestCommand::new(dir.path(), &["serve", "--listen", "127.0.0.1:0"]).run();
    assert_eq!(second.code, 2, "{}", second.stderr);
    let expected = format!(
        "error: paddock serve (pid {}, http://{}) already serves the data folder ./.paddock; stop it, or give this host another host.data",
        served.child.id(),
        served.address
    );
    assert_eq!(second.stderr.trim(), expected);
    let health = reqwest::get(format!("http://{}/v1/health", served.address)).await.unwrap();
    assert_eq!(health.status().as_u16(), 200, "the first one serves on");
}

/// How `child` exited, waiting at most `limit`.
async fn exit_of(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let since = Instant::now();
    while since.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status.code().unwrap_or(-1));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// A host with the `step` agent, which waits as long as its input says.
fn waiting_host(dir: &Path) -> Served {
    plugin(&dir.join("plugins"), "step", paddock_test_guests::guests::FLOW_STEP, "");
    setup(dir, "drain = \"5s\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_new_connections_lets_requests_in_flight_finish_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = waiting_host(dir.path());
    let url = format!("http://{}/v1/agents/step/run", served.address);
    let in_flight = tokio::spawn(reqwest::Client::new().post(url).body(r#"{"name":"w","wait_ms":1500}"#).send());
    tokio::time::sleep(Duration::from_millis(400)).await;
    signal(served.child.id(), "-TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(TcpStream::connect(&served.address).await.is_err(), "a new connection was accepted while stopping");
    let answered = in_flight.await.unwrap().unwrap();
    assert_eq!(answered.status().as_u16(), 200, "the request in flight finished");
    assert_eq!(exit_of(&mut served.child, Duration::from_secs(5)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = waiting_host(dir.path());
    let url = format!("http://{}/v1/agents/step/run", served.address);
    let in_flight = tokio::spawn(reqwest::Client::new().post(url).body(r#"{"name":"w","wait_ms":20000}"#).send());
    tokio::time::sleep(Duration::from_millis(400)).await;
    signal(served.child.id(), "-TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(exit_of(&mut served.child, Duration::from_millis(100)).await, None, "still draining");
    signal(served.child.id(), "-TERM");
    assert_eq!(exit_of(&mut served.child, Duration::from_secs(2)).await, Some(130));
    assert!(in_flight.await.unwrap().is_err(), "the cut request got an answer");
}

#[test]
fn inspect_works_beside_a_host_that_holds_a_durable_board() {
    let dir = tempfile::tempdir().unwrap();
    let served = setup(dir.path(), "");
    let config = std::fs::read_to_string(dir.path().join("paddock.toml")).unwrap();
    std::fs::write(dir.path().join("paddock.toml"), format!("{config}[blackboard]\nstore = \"durable\"\n")).unwrap();
    drop(served);
    let _served = serve(dir.path(), &[]);
    let inspected = TestCommand::new(dir.path(), &["inspect", paddock_test_guests::guests::ECHO]).run();
    assert_eq!(inspected.code, 0, "{}", inspected.stderr);
    assert!(inspected.stdout.contains("fits paddock:agent/agent-world@0.1.0: yes"), "{}", inspected.stdout);
}

#[test]
fn a_host_sized_past_the_kernels_memory_mappings_says_so_at_start_naming_both_knobs() {
    let dir = tempfile::tempdir().unwrap();
    let sized = "[engine]\nmax-instances = 10000\nmemory-reservation = \"256MiB\"\n\
                 [ceiling]\nmemory = \"64MiB\"\n[limits]\nmemory = \"64MiB\"\n";
    let served = setup(dir.path(), sized);
    let kernel: u64 = std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap().trim().parse().unwrap();
    // 10,000 instances of about 10 mappings each, beside the process's own.
    let expected = (kernel < 104_096).then(|| {
        format!(
            "the kernel allows this process {kernel} memory mappings (vm.max_map_count), fewer than the about 104096 \
             that engine.max-instances = 10000 instances running at once may hold: past it, invocations fail to \
             start; raise it (sysctl vm.max_map_count=131072) or lower engine.max-instances"
        )
    });
    // The check runs before the host listens; its line may reach the file a moment after.
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let log = std::fs::read_to_string(served.dir.join(SERVE_LOG)).unwrap();
        if expected.as_ref().is_none_or(|w| log.contains(w)) || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    match expected {
        Some(warning) => assert!(log.contains(&warning), "{log}"),
        None => assert!(!log.contains("vm.max_map_count"), "{log}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_left_waiting_past_its_timeout_by_its_tenants_max_concurrent_is_answered_429_naming_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    plugin(&plugins, "holder", paddock_test_guests::guests::FLOW_STEP, "");
    plugin(&plugins, "quick", paddock_test_guests::guests::FLOW_STEP, "[limits]\ntimeout = \"200ms\"\n");
    let served =
        setup(dir.path(), "[tenants.default]\nagents = [\"holder\", \"quick\"]\nbudget = { max-concurrent = 1 }\n");
    let http = reqwest::Client::new();
    let url = |agent: &str| format!("http://{}/v1/agents/{agent}/run", served.address);
    let holding = http.post(url("holder")).body(r#"{"wait_ms": 3000, "output": "held"}"#).send();
    let holding = tokio::spawn(holding);
    // Until the holder has the slot (a busy machine may admit it late), `quick` runs.
    let mut refused = None;
    for _ in 0..20 {
        let answer = http.post(url("quick")).body(r#"{"output": "quick"}"#).send().await.unwrap();
        if answer.status() != 200 {
            refused = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = refused.expect("the holder took the slot within a second");
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "busy");
    assert_eq!(
        body["error"]["message"],
        "tenant \"default\" is at its max-concurrent of 1 running invocations \
         (tenants.default.budget.max-concurrent = 1); none ended within 200ms"
    );
    let held = holding.await.unwrap().unwrap();
    assert_eq!(held.status(), 200);
    assert_eq!(held.json::<serde_json::Value>().await.unwrap()["output"], "held");
    // The slot is free again.
    let ran = http.post(url("quick")).body(r#"{"output": "quick"}"#).send().await.unwrap();
    assert_eq!(ran.status(), 200);
}

/// The host runs with transparent huge pages off (`THP_enabled: 0` in its
/// `/proc` status), whatever the machine's setting: its allocator gives
/// memory back 64 KiB at a time, and inside a huge page the next touch of
/// such a part zeroes a whole 2 MiB again (a Python agent's first run took
/// 1.8-4.2 s so, 1.2-1.5 s without).
#[cfg(target_os = "linux")]
#[test]
fn a_serving_host_runs_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().unwrap();
    let served = setup(dir.path(), "");
    let status = std::fs::read_to_string(format!("/proc/{}/status", served.child.id())).unwrap();
    let thp = status.lines().find_map(|l| l.strip_prefix("THP_enabled:")).map(str::trim);
    assert_eq!(thp, Some("0"), "the host's /proc status");
}

/// The names of `pid`'s threads that serve connections (`paddock-front-N`), sorted.
fn front_threads(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).ok())
        .map(|comm| comm.trim().to_string())
        .filter(|comm| comm.starts_with("paddock-front-"))
        .collect();
    names.sort();
    names
}

/// `serve.threads`: that many threads serve connections, one a core when
/// unset, none with 0 (the host's shared threads serve them); connections
/// are answered either way.
#[test]
fn serve_threads_starts_that_many_front_threads_and_each_setting_serves() {
    let cores = std::thread::available_parallelism().unwrap().get();
    let per_core: Vec<String> = (0..cores).map(|i| format!("paddock-front-{i}")).collect();
    for (section, want) in
        [("threads = 3\n", vec!["paddock-front-0", "paddock-front-1", "paddock-front-2"]), ("threads = 0\n", vec![])]
            .into_iter()
            .map(|(s, w)| (s, w.into_iter().map(String::from).collect::<Vec<_>>()))
            .chain([("", per_core)])
    {
        let dir = tempfile::tempdir().unwrap();
        let served = setup(dir.path(), section);
        assert_eq!(front_threads(served.child.id()), want, "with {section:?}");
        // More connections than threads, all open at once, each answered.
        let mut streams: Vec<std::net::TcpStream> =
            (0..5).map(|_| std::net::TcpStream::connect(&served.address).unwrap()).collect();
        for stream in &mut streams {
            use std::io::Write;
            stream.write_all(b"GET /v1/health HTTP/1.1\r\nhost: paddock\r\nconnection: close\r\n\r\n").unwrap();
        }
        for stream in &mut streams {
            use std::io::Read;
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            assert!(answer.starts_with("HTTP/1.1 200"), "with {section:?}: {answer}");
        }
    }
}
