//! WASI denies by default: no network, no filesystem beyond what the operator grants.

use crate::util::*;
use paddock::config::DirGrant;
use paddock::runtime::RunOptions;
use paddock_test_guests::guests;
use std::net::TcpListener;

/// root/secret.txt, root/data/inside.txt, root/data/link-out -> root
fn tree() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("secret.txt"), "top secret").unwrap();
    std::fs::create_dir(root.path().join("data")).unwrap();
    std::fs::write(root.path().join("data/inside.txt"), "hello from inside").unwrap();
    std::os::unix::fs::symlink(root.path(), root.path().join("data/link-out")).unwrap();
    root
}

fn grant(root: &tempfile::TempDir, write: bool) -> RunOptions {
    let dirs = vec![DirGrant { host: root.path().join("data"), guest: "/data".into(), write }];
    RunOptions { dirs, ..Default::default() }
}

#[tokio::test]
async fn reads_outside_the_granted_directory_fail_and_inside_succeed() {
    let root = tree();
    let rt = runtime("");
    let out = output_json(&run_with(&rt, guests::ESCAPE_PREOPEN, "{}", &grant(&root, false)).await);
    assert_eq!(out["inside"]["ok"], "hello from inside");
    for escape in ["dotdot", "absolute", "symlink", "cwd"] {
        assert!(out[escape]["err"].is_string(), "{escape} got through: {}", out[escape]);
        assert!(!out[escape].to_string().contains("top secret"));
    }
    assert!(out["write"]["err"].is_string(), "a read-only grant allowed a write: {}", out["write"]);
    assert!(!root.path().join("data/new.txt").exists());
}

#[tokio::test]
async fn a_write_grant_allows_writing_inside_only() {
    let root = tree();
    let rt = runtime("");
    let out = output_json(&run_with(&rt, guests::ESCAPE_PREOPEN, "{}", &grant(&root, true)).await);
    assert_eq!(out["write"]["ok"], "written");
    assert_eq!(std::fs::read_to_string(root.path().join("data/new.txt")).unwrap(), "x");
    assert!(out["dotdot"]["err"].is_string() && out["symlink"]["err"].is_string());
}

#[tokio::test]
async fn without_a_grant_there_is_no_filesystem_at_all() {
    let rt = runtime("");
    let out = output_json(&run(&rt, guests::ESCAPE_PREOPEN, "{}").await);
    for attempt in ["inside", "dotdot", "absolute", "symlink", "write", "cwd"] {
        assert!(out[attempt]["err"].is_string(), "{attempt}: {}", out[attempt]);
    }
}

#[tokio::test]
async fn a_granted_directory_that_does_not_exist_stops_the_start_naming_it() {
    let rt = runtime("");
    let options = RunOptions {
        dirs: vec![DirGrant { host: "/no/such/dir".into(), guest: "/data".into(), write: false }],
        ..Default::default()
    };
    let outcome = run_with(&rt, guests::ECHO, "{}", &options).await;
    assert!(
        error_text(&outcome)
            .starts_with("agent \"echo\" could not start: cannot open granted directory /no/such/dir (for /data): ")
    );
}

#[tokio::test]
async fn network_access_is_denied_and_nothing_connects() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let rt = runtime("");
    let out = output_json(&run(&rt, guests::SOCKET, &format!(r#"{{"addr":"{addr}"}}"#)).await);
    assert_eq!(out["tcp"]["err"], "Permission denied (os error 2)", "{out}");
    assert_eq!(out["udp"]["err"], "Permission denied (os error 2)", "{out}");
    assert!(out["dns"]["err"].is_string(), "{out}");
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "a connection arrived"
    );
}
