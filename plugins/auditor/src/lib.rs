//! `auditor`: gates a plan's results. Every planned task must have a result
//! (a `null` result is missing) of at least `min_words` words.
//!
//! Input: `{"goal": string, "plan": <planner output>, "results": [<executor
//! output> | null], "min_words": n (default 3)}`. On a pass it returns
//! `{"verdict": "pass", "checked": n, "notes": [...]}`, with a one-line review
//! from the "smart" route among the notes (or why there is none). On a fail
//! it returns an error naming every problem, e.g. `audit failed: task t2 has
//! 2 words, fewer than min_words 5; task t3 has no result`: in a saga, that
//! error is what makes the flow compensate. `compensate` has nothing to undo.

mod rules;

use paddock_sdk::llm::{self, Chat};
use paddock_sdk::{Agent, export_agent, log};
use serde::Serialize;

/// A review longer than this (in characters) is cut.
const MAX_REVIEW_CHARS: usize = 300;

/// A note holding a one-line review of the work, or saying why there is none:
/// the review informs, it never decides the audit.
fn review(audit: &rules::Audit) -> String {
    let answer = Chat::new("smart")
        .system(
            "You review a team's work against its goal. Answer with one line: is the goal met, and what is weakest?",
        )
        .user(&rules::review_prompt(audit))
        .max_tokens(80)
        .send();
    match answer {
        Ok(answer) => {
            let line: String =
                answer.text.lines().next().unwrap_or_default().trim().chars().take(MAX_REVIEW_CHARS).collect();
            format!("review by {}: {line}", answer.model)
        }
        Err(e) => {
            let why = llm::describe(&e);
            log::warn(&format!("no review: {why}"));
            format!("no review: route \"smart\" {why}")
        }
    }
}

/// What a passed audit returns.
#[derive(Serialize)]
struct Pass {
    verdict: &'static str,
    checked: usize,
    notes: Vec<String>,
}

struct Auditor;

impl Agent for Auditor {
    fn run(input: String) -> Result<String, String> {
        let audit = rules::parse_audit(&input)?;
        match rules::check(&audit) {
            Ok(mut notes) => {
                notes.push(review(&audit));
                log::info(&format!("audit passed: {} tasks checked", audit.tasks.len()));
                let pass = Pass { verdict: "pass", checked: audit.tasks.len(), notes };
                serde_json::to_string(&pass).map_err(|e| e.to_string())
            }
            Err(problems) => {
                let text = format!("audit failed: {}", problems.join("; "));
                log::warn(&text);
                Err(text)
            }
        }
    }
}

export_agent!(Auditor);
