//! `planner`: splits a goal into tasks on the "smart" route and writes the
//! plan to the blackboard at `plans/<run>`.
//!
//! Input: `{"goal": string, "tasks": 1..=8 (default 3)}`. Output:
//! `{"goal", "tasks": [{"id", "title"}], "source", "model"}`. `source` is
//! `"model"` when the reply was a JSON plan of the tasks asked for, and
//! `"derived"` when it was not (the simulated provider writes no JSON): the
//! planner then derives the tasks itself from the goal and the reply's words.
//! `compensate` deletes `plans/<run>`.

mod plan;

use paddock_sdk::llm::{self, Chat};
use paddock_sdk::{Agent, blackboard, context, export_agent, log};
use plan::Task;
use serde::Serialize;

/// What the planner returns and writes to `plans/<run>`.
#[derive(Serialize)]
struct Plan {
    goal: String,
    tasks: Vec<Task>,
    /// `"model"` or `"derived"`.
    source: &'static str,
    /// The model that replied.
    model: String,
}

/// The plan's key: `plans/<run>`, `plans/local` outside a run that has an id.
fn plan_key() -> String {
    format!("plans/{}", context::run().unwrap_or_else(|| "local".to_string()))
}

/// `1 task`, `3 tasks`.
fn tasks_text(n: usize) -> String {
    format!("{n} task{}", if n == 1 { "" } else { "s" })
}

struct Planner;

impl Agent for Planner {
    fn run(input: String) -> Result<String, String> {
        let plan::Request { goal, tasks: n } = plan::parse_request(&input)?;
        // A route that fails is an error, not a reason to derive: the flow's
        // retry policy is there for it, and a plan made without any model
        // would hide an outage.
        let answer = Chat::new("smart")
            .system(&plan::instructions(n))
            .user(&goal)
            .schema(&plan::schema(n))
            .max_tokens(800)
            .send()
            .map_err(|e| format!("route \"smart\" failed: {}", llm::describe(&e)))?;
        let (tasks, source) = match plan::from_reply(&answer.text, n) {
            Ok(tasks) => (tasks, "model"),
            Err(why) => {
                log::info(&format!("{why}: deriving {} from the goal and the reply", tasks_text(n)));
                (plan::derive(&goal, &answer.text, n), "derived")
            }
        };
        let plan = Plan { goal, tasks, source, model: answer.model };
        let key = plan_key();
        blackboard::put_json(&key, &plan).map_err(|e| format!("cannot write {key}: {e}"))?;
        log::info(&format!("wrote {key}: {} ({source})", tasks_text(n)));
        serde_json::to_string(&plan).map_err(|e| e.to_string())
    }

    fn compensate(_input: String) -> Result<(), String> {
        let key = plan_key();
        let deleted =
            blackboard::delete(&key).map_err(|e| format!("cannot delete {key}: {}", blackboard::describe(&e)))?;
        log::info(&format!("compensated: {key} {}", if deleted { "deleted" } else { "was already absent" }));
        Ok(())
    }
}

export_agent!(Planner);
