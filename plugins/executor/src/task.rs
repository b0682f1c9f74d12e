//! The executor's logic, free of host calls: its input, the prompt, the
//! record it keeps, and when a kept record means the work is already done.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The label that starts every reply of the simulated provider; not a word
/// of the result.
const SIMULATED: &str = "[simulated]";

/// What the executor was asked to do.
#[derive(Debug, PartialEq)]
pub struct Assignment {
    /// The plan's goal, for context.
    pub goal: String,
    /// The task's id (`t1`), safe to put in a blackboard key.
    pub id: String,
    /// What to do.
    pub title: String,
}

/// A finished task, as returned and as kept at `results/<run>/<id>`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Record {
    /// The task's id.
    pub id: String,
    /// The task's title.
    pub title: String,
    /// The model's answer.
    pub result: String,
    /// Words in `result`, by [`count_words`].
    pub words: usize,
    /// The idempotency key of the step instance that wrote it.
    pub key: Option<String>,
    /// The notes the answer was grounded in (from the `notes/search` tool).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssignment {
    task: Value,
    goal: Value,
}

const EXPECTED: &str = r#"expected {"task": {"id": string, "title": string}, "goal": string}"#;

/// Reads `{"task": {"id", "title"}, "goal": string}`; every error names the
/// field. Other fields of `task` are ignored.
pub fn parse_assignment(input: &str) -> Result<Assignment, String> {
    let raw: RawAssignment =
        serde_json::from_value(object(input)?).map_err(|e| format!("invalid input: {e} ({EXPECTED})"))?;
    let goal = match raw.goal.as_str().map(str::trim) {
        Some(goal) if !goal.is_empty() => goal.to_string(),
        _ => return Err(format!("invalid input: goal must be a non-empty string, got {}", raw.goal)),
    };
    let id = task_id(&raw.task, "task.id")?;
    let title = match raw.task.get("title").and_then(Value::as_str).map(str::trim) {
        Some(title) if !title.is_empty() => title.to_string(),
        _ => return Err(format!("invalid input: task.title must be a non-empty string, in {}", raw.task)),
    };
    Ok(Assignment { goal, id, title })
}

/// The task id of a compensation's input: the step's input
/// (`{"task": {"id"}}`) or its output (`{"id"}`), whichever the flow passes.
pub fn compensation_id(input: &str) -> Result<String, String> {
    let value = object(input)?;
    match value.get("task") {
        Some(task) => task_id(task, "task.id"),
        None => task_id(&value, "id"),
    }
}

/// Parses JSON text that must be an object (serde would take a struct from
/// an array too).
fn object(input: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(input) {
        Ok(value) if value.is_object() => Ok(value),
        Ok(value) => Err(format!("invalid input: {EXPECTED}, got {value}")),
        Err(e) => Err(format!("invalid input: {e} ({EXPECTED})")),
    }
}

/// The `id` of `task`, checked to be 1 to 64 of `A-Z a-z 0-9 . _ -`: it
/// becomes the last segment of a blackboard key, so no `/` may reach
/// another task's key.
fn task_id(task: &Value, field: &str) -> Result<String, String> {
    let id = task.get("id").unwrap_or(&Value::Null);
    match id.as_str() {
        Some(s)
            if (1..=64).contains(&s.len())
                && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) =>
        {
            Ok(s.to_string())
        }
        _ => Err(format!("invalid input: {field} must be 1 to 64 of A-Z a-z 0-9 . _ -, got {id}")),
    }
}

/// The system prompt.
pub const INSTRUCTIONS: &str = "You carry out one task of a larger plan. Reply with the task's result only: \
     a few plain sentences, no preamble.";

/// The user prompt for `a`.
pub fn prompt(a: &Assignment, notes: &[String]) -> String {
    let mut prompt = format!("Goal: {}\nTask {}: {}", a.goal, a.id, a.title);
    if !notes.is_empty() {
        prompt.push_str("\nThe team's notes on it:");
        for note in notes {
            prompt.push_str("\n- ");
            prompt.push_str(note);
        }
    }
    prompt
}

/// The notes in a `notes/search` answer (`{"notes": [string]}`); anything
/// else holds none.
pub fn notes_in(structured: &str) -> Vec<String> {
    #[derive(Deserialize)]
    struct Found {
        notes: Vec<String>,
    }
    serde_json::from_str::<Found>(structured).map_or_else(|_| Vec::new(), |f| f.notes)
}

/// Words in a result: runs of non-space, not counting the simulated label.
pub fn count_words(text: &str) -> usize {
    text.split_whitespace().filter(|w| *w != SIMULATED).count()
}

/// Whether `stored` is the work of this very step instance, so returning it
/// is the same as doing the task again. Without an idempotency key nothing
/// can be recognised, and the task is done again.
pub fn already_done(stored: &Record, key: Option<&str>) -> bool {
    key.is_some() && stored.key.as_deref() == key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_reads_task_and_goal_and_ignores_other_task_fields() {
        let a = parse_assignment(r#"{"task":{"id":"t2","title":" Write it ","extra":1},"goal":"ship"}"#).unwrap();
        assert_eq!(a, Assignment { goal: "ship".into(), id: "t2".into(), title: "Write it".into() });
        assert_eq!(prompt(&a, &[]), "Goal: ship\nTask t2: Write it");
        let notes = notes_in(r#"{"notes": ["Short sentences.", "One idea each."]}"#);
        assert_eq!(
            prompt(&a, &notes),
            "Goal: ship\nTask t2: Write it\nThe team's notes on it:\n- Short sentences.\n- One idea each."
        );
        assert_eq!(notes_in("no luck"), Vec::<String>::new());
    }

    #[test]
    fn assignment_errors_name_the_field() {
        for (input, field) in [
            (r#"{"goal":"g"}"#, "missing field `task`"),
            (r#"{"task":{"id":"t1","title":"x"}}"#, "missing field `goal`"),
            (r#"{"task":{"id":"t1","title":"x"},"goal":"g","plan":{}}"#, "unknown field `plan`"),
            (r#"{"task":{"title":"x"},"goal":"g"}"#, "task.id must be"),
            (r#"{"task":{"id":"../t1","title":"x"},"goal":"g"}"#, r#"got "../t1""#),
            (r#"{"task":{"id":"t1"},"goal":"g"}"#, "task.title must be a non-empty string"),
            (r#"{"task":{"id":"t1","title":"x"},"goal":3}"#, "goal must be a non-empty string, got 3"),
            (r#"[1]"#, "got [1]"),
        ] {
            let error = parse_assignment(input).unwrap_err();
            assert!(error.contains(field), "{input}: {error}");
        }
    }

    #[test]
    fn compensation_takes_the_steps_input_or_its_output() {
        assert_eq!(compensation_id(r#"{"task":{"id":"t3","title":"x"},"goal":"g"}"#).unwrap(), "t3");
        assert_eq!(compensation_id(r#"{"id":"t3","title":"x","result":"r","words":1}"#).unwrap(), "t3");
        assert!(compensation_id(r#"{"id":"a/b"}"#).unwrap_err().contains("id must be"));
    }

    #[test]
    fn words_do_not_count_the_simulated_label() {
        assert_eq!(count_words("[simulated] the host keeps"), 3);
        assert_eq!(count_words("  Done:\n two  words "), 3);
        assert_eq!(count_words(""), 0);
    }

    #[test]
    fn only_a_record_of_the_same_idempotency_key_is_already_done() {
        let record = |key: Option<&str>| Record {
            id: "t1".into(),
            title: "x".into(),
            result: "r".into(),
            words: 1,
            key: key.map(String::from),
            notes: Vec::new(),
        };
        assert!(already_done(&record(Some("run/main/t1")), Some("run/main/t1")));
        assert!(!already_done(&record(Some("run/other/t1")), Some("run/main/t1")));
        assert!(!already_done(&record(None), None));
        assert!(!already_done(&record(Some("k")), None));
    }
}
