//! The planner's logic, free of host calls: the input, the request to the
//! model, reading its reply as a plan, and deriving a plan when it is not one.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How many tasks a plan has unless the input says otherwise.
pub const DEFAULT_TASKS: usize = 3;

/// The most tasks a plan may have: each becomes a parallel executor step.
pub const MAX_TASKS: usize = 8;

/// The label that starts every reply of the simulated provider.
const SIMULATED: &str = "[simulated]";

/// A title longer than this (in characters) is cut: titles go into prompts.
const MAX_TITLE_CHARS: usize = 200;

/// What the planner was asked for.
#[derive(Debug, PartialEq)]
pub struct Request {
    /// The goal, trimmed.
    pub goal: String,
    /// How many tasks to plan (1 to [`MAX_TASKS`]).
    pub tasks: usize,
}

/// One task of a plan.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Task {
    /// `t1`, `t2`, ... by position; executors use it in blackboard keys.
    pub id: String,
    /// What to do.
    pub title: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    goal: Value,
    #[serde(default)]
    tasks: Value,
}

/// Reads `{"goal": string, "tasks": 1..=8}`; every error names the field.
pub fn parse_request(input: &str) -> Result<Request, String> {
    let expected = format!("expected {{\"goal\": string, \"tasks\": 1 to {MAX_TASKS}}}");
    let value: Value = serde_json::from_str(input).map_err(|e| format!("invalid input: {e} ({expected})"))?;
    if !value.is_object() {
        // serde would take a struct from an array too: ["g"] is no request.
        return Err(format!("invalid input: {expected}, got {value}"));
    }
    let raw: RawRequest = serde_json::from_value(value).map_err(|e| format!("invalid input: {e} ({expected})"))?;
    let goal = match raw.goal.as_str().map(str::trim) {
        Some(goal) if !goal.is_empty() => goal.to_string(),
        _ => return Err(format!("invalid input: goal must be a non-empty string, got {}", raw.goal)),
    };
    let tasks = match &raw.tasks {
        Value::Null => DEFAULT_TASKS,
        n => match n.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) if (1..=MAX_TASKS).contains(&n) => n,
            _ => return Err(format!("invalid input: tasks must be a whole number from 1 to {MAX_TASKS}, got {n}")),
        },
    };
    Ok(Request { goal, tasks })
}

/// The system prompt asking for `n` tasks as JSON.
pub fn instructions(n: usize) -> String {
    format!(
        "You plan work. Split the user's goal into exactly {n} tasks that can be done in parallel, \
         each a short imperative title. Answer with JSON only: {{\"tasks\":[{{\"id\":\"t1\",\"title\":\"...\"}}]}}."
    )
}

/// The JSON Schema of a plan of exactly `n` tasks.
pub fn schema(n: usize) -> String {
    serde_json::json!({
        "type": "object",
        "properties": {
            "tasks": {
                "type": "array",
                "minItems": n,
                "maxItems": n,
                "items": {
                    "type": "object",
                    "properties": { "id": { "type": "string" }, "title": { "type": "string" } },
                    "required": ["id", "title"],
                    "additionalProperties": false
                }
            }
        },
        "required": ["tasks"],
        "additionalProperties": false
    })
    .to_string()
}

#[derive(Deserialize)]
struct ReplyPlan {
    tasks: Vec<ReplyTask>,
}

#[derive(Deserialize)]
struct ReplyTask {
    title: String,
}

/// Reads a model's reply as a plan of exactly `n` tasks; `Err` says why it is
/// not one. The JSON object may sit inside other text (a code fence). The ids
/// are assigned by position, `t1`..`tn`, whatever the model wrote: they end
/// up in blackboard keys, so they are never taken from a model.
pub fn from_reply(text: &str, n: usize) -> Result<Vec<Task>, String> {
    let json = match (text.find('{'), text.rfind('}')) {
        (Some(start), Some(end)) if start < end => &text[start..=end],
        _ => return Err("the reply holds no JSON object".to_string()),
    };
    let plan: ReplyPlan = serde_json::from_str(json).map_err(|e| format!("the reply is not a JSON plan: {e}"))?;
    if plan.tasks.len() != n {
        return Err(format!("the reply has {} tasks, not the {n} asked for", plan.tasks.len()));
    }
    plan.tasks
        .into_iter()
        .enumerate()
        .map(|(i, task)| match task.title.trim() {
            "" => Err(format!("task {} of the reply has an empty title", i + 1)),
            title => Ok(Task { id: format!("t{}", i + 1), title: title.chars().take(MAX_TITLE_CHARS).collect() }),
        })
        .collect()
}

/// The phases a derived plan is made of, in the order they happen, each with
/// its rank: a plan of `n` tasks takes the phases ranked below `n`, so three
/// tasks are research, build and review, not research, design and build.
const PHASES: [(&str, usize); MAX_TASKS] = [
    ("research", 1),
    ("design", 3),
    ("build", 0),
    ("test", 4),
    ("review", 2),
    ("document", 5),
    ("release", 6),
    ("follow up", 7),
];

/// Derives `n` tasks from the goal and a reply that is not a plan (the
/// simulated provider's words, or any prose): one phase of the work each,
/// `"<goal> — <phase>: <two words of the reply>"`, the reply's distinct words
/// of four letters or more taken in turn. The same goal and reply always
/// give the same plan.
pub fn derive(goal: &str, reply: &str, n: usize) -> Vec<Task> {
    let mut words: Vec<&str> = Vec::new();
    for word in reply.split_whitespace().filter(|w| *w != SIMULATED) {
        let word = word.trim_matches(|c: char| !c.is_alphanumeric());
        if word.chars().count() >= 4 && !words.contains(&word) {
            words.push(word);
        }
    }
    PHASES
        .iter()
        .filter(|(_, rank)| *rank < n)
        .enumerate()
        .map(|(i, (phase, _))| {
            let title = match words.len() {
                0 => format!("{goal} — {phase}"),
                len => format!("{goal} — {phase}: {} {}", words[2 * i % len], words[(2 * i + 1) % len]),
            };
            Task { id: format!("t{}", i + 1), title }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_defaults_to_three_tasks_and_trims_the_goal() {
        let request = parse_request(r#"{"goal":"  ship the report "}"#).unwrap();
        assert_eq!(request, Request { goal: "ship the report".into(), tasks: 3 });
        assert_eq!(parse_request(r#"{"goal":"g","tasks":8}"#).unwrap().tasks, 8);
    }

    #[test]
    fn request_errors_name_the_field() {
        for (input, field) in [
            (r#"{}"#, "`goal`"),
            (r#"{"goal":""}"#, "goal must be a non-empty string"),
            (r#"{"goal":7}"#, "goal must be a non-empty string, got 7"),
            (r#"{"goal":"g","tasks":0}"#, "tasks must be a whole number from 1 to 8, got 0"),
            (r#"{"goal":"g","tasks":9}"#, "got 9"),
            (r#"{"goal":"g","tasks":"3"}"#, r#"got "3""#),
            (r#"{"goal":"g","steps":3}"#, "unknown field `steps`"),
            (r#"["g"]"#, r#"got ["g"]"#),
            ("{", "EOF while parsing"),
        ] {
            let error = parse_request(input).unwrap_err();
            assert!(error.contains(field), "{input}: {error}");
        }
    }

    #[test]
    fn schema_is_json_asking_for_exactly_n_tasks() {
        let schema: Value = serde_json::from_str(&schema(4)).unwrap();
        assert_eq!(schema["properties"]["tasks"]["minItems"], 4);
        assert_eq!(schema["properties"]["tasks"]["maxItems"], 4);
    }

    #[test]
    fn a_json_reply_becomes_the_plan_with_ids_by_position() {
        let reply = "```json\n{\"tasks\":[{\"id\":\"../x\",\"title\":\" Gather data \"},{\"id\":\"a\",\"title\":\"Write it\"}]}\n```";
        let tasks = from_reply(reply, 2).unwrap();
        assert_eq!(
            tasks,
            vec![
                Task { id: "t1".into(), title: "Gather data".into() },
                Task { id: "t2".into(), title: "Write it".into() }
            ]
        );
    }

    #[test]
    fn a_reply_that_is_not_a_plan_of_n_tasks_says_why() {
        assert!(from_reply("[simulated] the plan runs fast", 3).unwrap_err().contains("no JSON object"));
        assert!(from_reply(r#"{"steps":[]}"#, 3).unwrap_err().contains("not a JSON plan"));
        assert!(from_reply(r#"{"tasks":[{"title":"a"}]}"#, 3).unwrap_err().contains("has 1 tasks, not the 3"));
        assert!(from_reply(r#"{"tasks":[{"title":" "}]}"#, 1).unwrap_err().contains("empty title"));
    }

    #[test]
    fn derived_plans_have_n_tasks_in_phase_order_built_from_the_reply() {
        let reply = "[simulated] the sandbox keeps a route keeps safe because every tenant";
        let tasks = derive("ship the report", reply, 3);
        let titles: Vec<&str> = tasks.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "ship the report — research: sandbox keeps",
                "ship the report — build: route safe",
                "ship the report — review: because every",
            ]
        );
        assert_eq!(tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["t1", "t2", "t3"]);
        for n in 1..=MAX_TASKS {
            assert_eq!(derive("g", reply, n).len(), n);
        }
        assert_eq!(derive("g", reply, 1)[0].title, "g — build: sandbox keeps");
    }

    #[test]
    fn derivation_is_deterministic_and_works_without_usable_words() {
        let reply = "[simulated] a of the is";
        assert_eq!(derive("g", reply, 5), derive("g", reply, 5));
        assert_eq!(derive("g", reply, 2)[1].title, "g — build");
    }
}
