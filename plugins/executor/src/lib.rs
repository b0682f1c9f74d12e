//! `executor`: carries out one task of a plan on the "fast" route, at most
//! once per flow step instance, grounded in the team's notes when the
//! operator serves them (the `notes/search` tool of an MCP server, as
//! `examples/paddock.toml` configures `examples/mcp/notes.py`).
//!
//! Input: `{"task": {"id", "title"}, "goal": string}`. Output, also kept at
//! `results/<run>/<task id>`: `{"id", "title", "result", "words", "key",
//! "notes"}` (`notes` only when some were found), where `key` is the step's idempotency key. A later attempt of the same
//! step instance (a retry, or a re-run after a host crash) finds that record
//! under its own key and returns it without asking the model again.
//! `compensate` deletes the record.

mod task;

use paddock_sdk::llm::{self, Chat};
use paddock_sdk::{Agent, blackboard, context, export_agent, log, tools};
use task::Record;

/// The record's key: `results/<run>/<id>` (`local` outside a run with an id).
fn result_key(id: &str) -> String {
    format!("results/{}/{id}", context::run().unwrap_or_else(|| "local".to_string()))
}

/// The record at `key` and its revision (0 when absent). A value that is not
/// a record is reported and treated as absent, so it gets replaced.
fn read(key: &str) -> Result<(Option<Record>, u64), String> {
    match blackboard::get(key) {
        Ok(None) => Ok((None, 0)),
        Ok(Some(entry)) => match serde_json::from_slice(&entry.value) {
            Ok(record) => Ok((Some(record), entry.revision)),
            Err(e) => {
                log::warn(&format!("{key} holds no executor record ({e}); replacing it"));
                Ok((None, entry.revision))
            }
        },
        Err(e) => Err(format!("cannot read {key}: {}", blackboard::describe(&e))),
    }
}

/// Writes `record` at `key` if it still is at `revision`. When another
/// attempt of this step instance wrote first, its record stands and is
/// returned, so the flow sees one result per task.
fn store(key: &str, record: Record, revision: u64) -> Result<Record, String> {
    let bytes = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
    let refused = |e: blackboard::Error| format!("cannot write {key}: {}", blackboard::describe(&e));
    match blackboard::compare_and_swap(key, revision, &bytes) {
        Ok(_) => Ok(record),
        Err(blackboard::Error::Conflict(_)) => match read(key)? {
            (Some(theirs), _) if task::already_done(&theirs, record.key.as_deref()) => {
                log::info(&format!("{key} was written by another attempt of this step; keeping it"));
                Ok(theirs)
            }
            _ => blackboard::put(key, &bytes).map(|_| record).map_err(refused),
        },
        Err(e) => Err(refused(e)),
    }
}

/// The tool that finds the team's notes on a task.
const NOTES: &str = "notes/search";

/// The notes bearing on `a`, when the notes tool is served and granted;
/// none otherwise (a failing tool is logged and does not fail the task).
fn notes_for(a: &task::Assignment) -> Vec<String> {
    match tools::available() {
        Ok(offered) if offered.iter().any(|t| t.name == NOTES) => {}
        Ok(_) => return Vec::new(),
        Err(e) => {
            log::warn(&format!("cannot list tools: {}", tools::describe(&e)));
            return Vec::new();
        }
    }
    match tools::call(NOTES, &serde_json::json!({ "query": a.title, "limit": 2 })) {
        Ok(found) => task::notes_in(found.structured.as_deref().unwrap_or(&found.text)),
        Err(e) => {
            log::warn(&format!("task {}: no notes: {}", a.id, tools::describe(&e)));
            Vec::new()
        }
    }
}

struct Executor;

impl Agent for Executor {
    fn run(input: String) -> Result<String, String> {
        let assignment = task::parse_assignment(&input)?;
        let key = result_key(&assignment.id);
        let idempotency = context::idempotency_key();
        let (stored, revision) = read(&key)?;
        let record = match stored {
            Some(done) if task::already_done(&done, idempotency.as_deref()) => {
                log::info(&format!(
                    "task {} already done (attempt {}, key {}): returning {key} without asking the model",
                    done.id,
                    context::attempt(),
                    idempotency.as_deref().unwrap_or_default()
                ));
                done
            }
            _ => {
                let notes = notes_for(&assignment);
                let answer = Chat::new("fast")
                    .system(task::INSTRUCTIONS)
                    .user(&task::prompt(&assignment, &notes))
                    .max_tokens(400)
                    .send()
                    .map_err(|e| format!("task {}: route \"fast\" failed: {}", assignment.id, llm::describe(&e)))?;
                let result = answer.text.trim().to_string();
                let record = Record {
                    words: task::count_words(&result),
                    id: assignment.id,
                    title: assignment.title,
                    result,
                    key: idempotency,
                    notes,
                };
                let record = store(&key, record, revision)?;
                log::info(&format!("task {} done by {}: {} words in {key}", record.id, answer.model, record.words));
                record
            }
        };
        serde_json::to_string(&record).map_err(|e| e.to_string())
    }

    fn compensate(input: String) -> Result<(), String> {
        let key = result_key(&task::compensation_id(&input)?);
        let deleted =
            blackboard::delete(&key).map_err(|e| format!("cannot delete {key}: {}", blackboard::describe(&e)))?;
        log::info(&format!("compensated: {key} {}", if deleted { "deleted" } else { "was already absent" }));
        Ok(())
    }
}

export_agent!(Executor);
