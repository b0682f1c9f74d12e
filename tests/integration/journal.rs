//! The journal across the sandbox boundary: an invocation recorded with an
//! LLM call, blackboard reads and writes, a call to another agent, clocks
//! and random numbers, then replayed from its entries — same output, no
//! provider request, no board change, no callee run — and the first
//! divergence of a replay that does something else.

use crate::util::{error_text, fake_provider, output_json, plugin, run_with, runtime_with_plugins};
use paddock::journal::{Entry, MAX_BYTES, TRUNCATED, Tape};
use paddock::runtime::{RunOptions, Runtime};
use paddock::sandbox::{InvokeError, Outcome};
use paddock_fake_provider::{Behavior, FakeProvider, Reply};
use paddock_test_guests::guests;
use serde_json::{Value, json};
use std::sync::Arc;

/// A host where `prober` may use the route `r` (to `fake`) and call `counter`,
/// and `client` (the llm-client guest) may use `r` too.
fn host(dir: &std::path::Path, fake: &FakeProvider) -> Runtime {
    let grants = "[capabilities]\nroutes = [\"r\"]\nagents = [\"counter\"]\n";
    plugin(dir, "prober", guests::PROBER, grants);
    plugin(dir, "counter", guests::COUNTER, "");
    plugin(dir, "client", guests::LLM_CLIENT, "[capabilities]\nroutes = [\"r\"]\n");
    plugin(dir, "readings", guests::READINGS, "");
    let toml = format!(
        "{}[routes.r]\nretries = 0\ntargets = [{{ provider = \"p\", model = \"m-1\" }}]\n",
        fake_provider("p", "openai", fake)
    );
    runtime_with_plugins(dir, &toml)
}

async fn run(rt: &Runtime, agent: &str, input: &Value, journal: &Arc<Tape>) -> Outcome {
    let options = RunOptions { journal: Some(journal.clone()), ..Default::default() };
    run_with(rt, agent, &input.to_string(), &options).await
}

fn calls(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.call.as_str()).collect()
}

const OPS: &str = r#"{"ops": [
    {"op": "put", "key": "notes/a", "value": "hello"},
    {"op": "get", "key": "notes/a"},
    {"op": "llm", "route": "r"},
    {"op": "call", "agent": "counter"},
    {"op": "list", "prefix": "notes/"}
]}"#;

#[tokio::test]
async fn a_replay_gives_the_same_output_calling_no_provider_writing_nothing_and_running_no_callee() {
    let fake = FakeProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), &fake);
    fake.push(Behavior::Reply(Reply { text: Some("recorded answer".into()), ..Default::default() }));
    let input: Value = serde_json::from_str(OPS).unwrap();

    let recording = Tape::recording();
    let recorded = output_json(&run(&rt, "prober", &input, &recording).await);
    assert_eq!(
        recorded,
        json!([{"ok": 1}, {"ok": "hello"}, {"ok": "recorded answer"}, {"ok": "{\"conflicts\":0}"}, {"ok": ["notes/a"]}])
    );
    let entries = recording.entries();
    assert_eq!(calls(&entries), ["blackboard.put", "blackboard.get", "llm.complete", "agents.call", "blackboard.list"]);
    assert_eq!(entries[3].request, json!(["counter", "{}"]));
    assert_eq!(entries[3].reply, json!({"Ok": "{\"conflicts\":0}"}));
    assert!(!recording.truncated());

    let board = rt.blackboard().namespace("default");
    let revision = board.revision().unwrap();
    let counted = board.get("counter").unwrap().map(|e| e.value.to_vec());
    assert_eq!(counted.as_deref(), Some(&b"1"[..]));
    assert_eq!(fake.request_count(), 1);

    let replay = Tape::replaying(entries);
    let replayed = output_json(&run(&rt, "prober", &input, &replay).await);
    assert_eq!(replayed, recorded);
    assert_eq!((replay.finish(), replay.remaining()), (None, 0));
    assert_eq!(fake.request_count(), 1, "the replay reached the provider");
    assert_eq!(board.revision().unwrap(), revision, "the replay wrote to the blackboard");
    assert_eq!(board.get("counter").unwrap().map(|e| e.value.to_vec()), counted, "the replay ran the callee");
}

#[tokio::test]
async fn a_replay_with_another_input_traps_at_the_first_call_that_differs() {
    let fake = FakeProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), &fake);
    let ops = |value: &str| json!({"ops": [{"op": "get", "key": "k"}, {"op": "put", "key": "k", "value": value}]});
    let recording = Tape::recording();
    output_json(&run(&rt, "prober", &ops("hi"), &recording).await);
    let revision = rt.blackboard().namespace("default").revision().unwrap();

    let replay = Tape::replaying(recording.entries());
    let outcome = run(&rt, "prober", &ops("yo"), &replay).await;
    let expected = r#"replay diverged at call #2: the agent called blackboard.put("k",[121,111]) but the journal has blackboard.put("k",[104,105])"#;
    assert_eq!(replay.divergence().map(|d| d.to_string()).as_deref(), Some(expected));
    assert_eq!(error_text(&outcome), format!("agent \"prober\" crashed: {expected}"));
    assert!(matches!(outcome.result, Err(InvokeError::Crashed { .. })));
    assert_eq!(replay.finish().map(|d| d.to_string()).as_deref(), Some(expected));
    assert_eq!(rt.blackboard().namespace("default").revision().unwrap(), revision);
}

#[tokio::test]
async fn a_replay_that_makes_fewer_calls_is_reported_when_it_finishes() {
    let fake = FakeProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), &fake);
    let recording = Tape::recording();
    let two = json!({"ops": [{"op": "list", "prefix": "a/"}, {"op": "list", "prefix": "b/"}]});
    output_json(&run(&rt, "prober", &two, &recording).await);

    let replay = Tape::replaying(recording.entries());
    let one = json!({"ops": [{"op": "list", "prefix": "a/"}]});
    assert_eq!(output_json(&run(&rt, "prober", &one, &replay).await), json!([{"ok": []}]));
    assert_eq!((replay.divergence(), replay.remaining()), (None, 1));
    assert_eq!(
        replay.finish().map(|d| d.to_string()).as_deref(),
        Some(
            r#"replay diverged at call #2: the agent finished, but the journal has 1 more call, the next being blackboard.list("b/")"#
        )
    );
}

#[tokio::test]
async fn a_stream_is_replayed_piece_by_piece_from_the_journal() {
    let fake = FakeProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), &fake);
    let text = "one two three four";
    fake.push(Behavior::Reply(Reply {
        text: Some(text.into()),
        chunks: 4,
        output_tokens: Some(4),
        ..Default::default()
    }));
    let input = json!({"op": "stream", "route": "r", "prompt": "count"});

    let recording = Tape::recording();
    let recorded = output_json(&run(&rt, "client", &input, &recording).await);
    assert_eq!(
        recorded["pieces"].as_array().map(|p| p.iter().filter_map(Value::as_str).collect::<String>()).as_deref(),
        Some(text)
    );
    let entries = recording.entries();
    let pieces = recorded["pieces"].as_array().map_or(0, Vec::len);
    let mut expected = vec!["llm.stream"];
    // One `next` per piece, and the one that says the stream ended.
    expected.extend(std::iter::repeat_n("llm.stream.next", pieces + 1));
    expected.extend(["llm.stream.usage", "llm.stream.response"]);
    assert_eq!(calls(&entries), expected);
    assert_eq!(entries[1].request, json!([1]));

    let replay = Tape::replaying(entries);
    assert_eq!(output_json(&run(&rt, "client", &input, &replay).await), recorded);
    assert_eq!(replay.finish(), None);
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn clocks_and_random_numbers_replay_as_recorded() {
    let fake = FakeProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), &fake);
    let input = json!({"op": "read"});

    let recording = Tape::recording();
    let recorded = output_json(&run(&rt, "readings", &input, &recording).await);
    let entries = recording.entries();
    let reply = |call: &str| entries.iter().find(|e| e.call == call).map(|e| e.reply.clone());
    assert_eq!(reply("clock.wall"), Some(recorded["wall"].clone()));
    assert_eq!(reply("random.secure"), Some(recorded["random"].clone()));
    assert_eq!(reply("random.secure-u64"), Some(recorded["random_u64"].clone()));
    assert_eq!(reply("random.insecure"), Some(recorded["insecure"].clone()));
    assert_eq!(reply("random.insecure-u64"), Some(recorded["insecure_u64"].clone()));
    assert_eq!(reply("random.insecure-seed"), Some(recorded["seed"].clone()));
    // The standard library reads the monotonic clock too (`Instant::now`).
    let monotonic: Vec<Value> =
        entries.iter().filter(|e| e.call == "clock.monotonic").map(|e| e.reply.clone()).collect();
    assert!(monotonic.windows(2).any(|w| json!(w) == recorded["monotonic"]), "{monotonic:?}");

    // Live, the values change; replayed, every one is the recorded one.
    let again = output_json(&run(&rt, "readings", &input, &Tape::recording()).await);
    assert_ne!(again["random"], recorded["random"]);
    let replay = Tape::replaying(entries);
    assert_eq!(output_json(&run(&rt, "readings", &input, &replay).await), recorded);
    assert_eq!(replay.finish(), None);
}

#[tokio::test]
async fn a_flood_of_reads_truncates_the_journal_at_its_cap_and_its_replay_stops_there() {
    let fake = FakeProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), &fake);
    // 64 KiB of 'a': about 192 KiB of JSON per recorded read, so the cap comes after ~85 reads.
    let writer = paddock::blackboard::Writer::new("test", "test");
    rt.blackboard().namespace("default").put("big", &vec![b'a'; 64 << 10], &writer).unwrap();
    let input = json!({"op": "flood", "key": "big", "n": 200});

    let recording = Tape::recording();
    assert_eq!(output_json(&run(&rt, "readings", &input, &recording).await), json!({"found": 200}));
    assert!(recording.truncated());
    assert!(recording.bytes() <= MAX_BYTES && recording.bytes() > MAX_BYTES - (200 << 10), "{}", recording.bytes());
    let entries = recording.entries();
    let after = entries.len() - 1;
    assert_eq!(
        entries[after],
        Entry { call: TRUNCATED.into(), request: json!([after, MAX_BYTES]), reply: Value::Null }
    );
    assert!(entries[..after].iter().all(|e| e.call == "blackboard.get"));

    let replay = Tape::replaying(entries);
    let outcome = run(&rt, "readings", &input, &replay).await;
    let expected = format!(
        "replay diverged at call #{}: the journal was truncated after call #{after} (16 MiB); the agent called blackboard.get(\"big\")",
        after + 1
    );
    assert_eq!(error_text(&outcome), format!("agent \"readings\" crashed: {expected}"));
    assert_eq!(replay.remaining(), 0);
}
