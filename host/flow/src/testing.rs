//! Records for the stores' tests.

use crate::store::*;
use paddock_journal::Entry;

/// The holder of every run these tests write.
pub const H: &str = "h1";

pub fn question(id: &str, tenant: &str, text: &str, created_ms: u64) -> ApprovalRecord {
    ApprovalRecord {
        id: id.into(),
        run: "r".into(),
        tenant: tenant.into(),
        asker: "step".into(),
        question: text.into(),
        options: vec!["yes".into(), "no".into()],
        created_ms,
        deadline_ms: u64::MAX,
        answer: None,
        answered_by: None,
        answered_ms: None,
    }
}

pub fn run(id: &str, tenant: &str, created_ms: u64, status: RunStatus) -> RunRecord {
    RunRecord {
        id: id.into(),
        flow: "f".into(),
        origin: "f.toml".into(),
        source: String::new(),
        input: "{}".into(),
        tenant: tenant.into(),
        status,
        output: None,
        error: None,
        pins: Default::default(),
        owner: H.into(),
        heartbeat_ms: created_ms,
        created_ms,
        updated_ms: created_ms,
    }
}

pub fn step(path: &str, output: &str) -> StepRecord {
    StepRecord {
        path: path.into(),
        seq: 0,
        kind: "agent".into(),
        agent: Some("a".into()),
        version: None,
        status: StepStatus::Done,
        attempt: 1,
        input: None,
        output: Some(output.into()),
        raw: None,
        error: None,
        started_ms: 1,
        ended_ms: Some(2),
        host: None,
    }
}

pub fn dead(id: &str, tenant: &str, created_ms: u64) -> DeadLetter {
    DeadLetter {
        id: id.into(),
        run: "r".into(),
        flow: "f".into(),
        step: "s".into(),
        agent: "a".into(),
        version: "v".into(),
        tenant: tenant.into(),
        input: "{}".into(),
        error: "boom".into(),
        attempts: 3,
        journal: vec![Entry { call: "clock.wall".into(), request: serde_json::json!([]), reply: serde_json::json!(1) }],
        created_ms,
    }
}
