//! The audit's rules, free of host calls: the input, and the checks that
//! decide pass or fail.

use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

/// The fewest words a result may have unless the input says otherwise.
pub const DEFAULT_MIN_WORDS: u64 = 3;

/// The label that starts every reply of the simulated provider; not a word
/// of a result.
const SIMULATED: &str = "[simulated]";

/// What is audited.
#[derive(Debug, PartialEq)]
pub struct Audit {
    /// The plan's goal.
    pub goal: String,
    /// The planned tasks, in order.
    pub tasks: Vec<Planned>,
    /// The plan's `source` (`"model"` or `"derived"`), if it says.
    pub source: Option<String>,
    /// One entry per executor step; `None` for one that was skipped.
    pub results: Vec<Option<Done>>,
    /// The fewest words a result may have.
    pub min_words: u64,
}

/// A task of the plan (the planner's output).
#[derive(Debug, PartialEq, Deserialize)]
pub struct Planned {
    /// Its id.
    pub id: String,
    /// Its title.
    pub title: String,
}

/// A finished task (the executor's output); its other fields are ignored.
#[derive(Debug, PartialEq, Deserialize)]
pub struct Done {
    /// The task's id.
    pub id: String,
    /// What the executor produced.
    pub result: String,
}

#[derive(Deserialize)]
struct PlanFields {
    tasks: Vec<Planned>,
    #[serde(default)]
    source: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    goal: Value,
    plan: Value,
    results: Value,
    #[serde(default)]
    min_words: Value,
}

const EXPECTED: &str = r#"expected {"goal": string, "plan": the planner's output, "results": [the executors' outputs or null], "min_words": n}"#;

/// Reads the audit's input; every error names the field (`plan.tasks`,
/// `results[2]`, ...).
pub fn parse_audit(input: &str) -> Result<Audit, String> {
    let value: Value = serde_json::from_str(input).map_err(|e| format!("invalid input: {e} ({EXPECTED})"))?;
    if !value.is_object() {
        return Err(format!("invalid input: {EXPECTED}, got {value}"));
    }
    let raw: RawAudit = serde_json::from_value(value).map_err(|e| format!("invalid input: {e} ({EXPECTED})"))?;
    let goal = raw.goal.as_str().ok_or_else(|| format!("invalid input: goal must be a string, got {}", raw.goal))?;
    let plan: PlanFields = serde_json::from_value(raw.plan).map_err(|e| format!("invalid input: plan: {e}"))?;
    let Value::Array(items) = raw.results else {
        return Err(format!("invalid input: results must be an array, got {}", raw.results));
    };
    let results = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Null => Ok(None),
            item => serde_json::from_value(item)
                .map(Some)
                .map_err(|e| format!("invalid input: results[{i}] must be an executor's output or null: {e}")),
        })
        .collect::<Result<_, _>>()?;
    let min_words = match &raw.min_words {
        Value::Null => DEFAULT_MIN_WORDS,
        n => n
            .as_u64()
            .ok_or_else(|| format!("invalid input: min_words must be a whole number of at least 0, got {n}"))?,
    };
    Ok(Audit { goal: goal.to_string(), tasks: plan.tasks, source: plan.source, results, min_words })
}

/// Words in a result: runs of non-space, not counting the simulated label
/// (the executor counts the same way).
pub fn count_words(text: &str) -> usize {
    text.split_whitespace().filter(|w| *w != SIMULATED).count()
}

/// Checks that every planned task has a result (a `null` one is missing)
/// and that each has at least `min_words` words. `Ok` carries notes; `Err`
/// every problem, in plan order.
pub fn check(audit: &Audit) -> Result<Vec<String>, Vec<String>> {
    let mut notes = Vec::new();
    let mut problems = Vec::new();
    let mut results: HashMap<&str, &str> = HashMap::new();
    for done in audit.results.iter().flatten() {
        if results.insert(&done.id, &done.result).is_some() {
            notes.push(format!("task {} has more than one result; the last was checked", done.id));
        }
    }
    if audit.tasks.is_empty() {
        problems.push("the plan has no tasks".to_string());
    }
    let mut planned = HashMap::new();
    for task in &audit.tasks {
        if planned.insert(task.id.as_str(), ()).is_some() {
            problems.push(format!("the plan lists task {} twice", task.id));
            continue;
        }
        match results.get(task.id.as_str()) {
            None => problems.push(format!("task {} has no result", task.id)),
            Some(text) => {
                let words = count_words(text) as u64;
                if words < audit.min_words {
                    problems.push(format!(
                        "task {} has {words} word{}, fewer than min_words {}",
                        task.id,
                        if words == 1 { "" } else { "s" },
                        audit.min_words
                    ));
                }
            }
        }
    }
    let mut extra: Vec<&str> = results.keys().copied().filter(|id| !planned.contains_key(id)).collect();
    extra.sort_unstable();
    for id in extra {
        notes.push(format!("result {id} is not in the plan; not checked"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let n = audit.tasks.len();
    notes.insert(0, format!("{n} of {n} planned tasks have a result of at least {} words", audit.min_words));
    if audit.source.as_deref() == Some("derived") {
        notes.push("the plan was derived by the planner, not written by a model".to_string());
    }
    Ok(notes)
}

/// The request for a one-line review of the work.
pub fn review_prompt(audit: &Audit) -> String {
    let mut text = format!("Goal: {}\n", audit.goal);
    let results: HashMap<&str, &str> =
        audit.results.iter().flatten().map(|d| (d.id.as_str(), d.result.as_str())).collect();
    for task in &audit.tasks {
        let result: Vec<&str> = results.get(task.id.as_str()).unwrap_or(&"").split_whitespace().take(60).collect();
        text.push_str(&format!("{} ({}): {}\n", task.id, task.title, result.join(" ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(results: &str, min_words: u64) -> Audit {
        let input = format!(
            r#"{{"goal":"ship","plan":{{"goal":"ship","tasks":[{{"id":"t1","title":"a"}},{{"id":"t2","title":"b"}},{{"id":"t3","title":"c"}}],"source":"derived","model":"sim-smart"}},"results":{results},"min_words":{min_words}}}"#
        );
        parse_audit(&input).unwrap()
    }

    #[test]
    fn a_complete_audit_passes_with_notes() {
        let a = audit(
            r#"[{"id":"t1","result":"[simulated] one two three","words":3},{"id":"t2","result":"four five six"},{"id":"t3","result":"a b c d"}]"#,
            3,
        );
        assert_eq!(
            check(&a).unwrap(),
            [
                "3 of 3 planned tasks have a result of at least 3 words",
                "the plan was derived by the planner, not written by a model"
            ]
        );
    }

    #[test]
    fn short_and_missing_results_fail_with_every_reason_in_plan_order() {
        let a = audit(r#"[{"id":"t1","result":"one"},{"id":"t2","result":"two words"},null]"#, 2);
        assert_eq!(
            check(&a).unwrap_err().join("; "),
            "task t1 has 1 word, fewer than min_words 2; task t3 has no result"
        );
    }

    #[test]
    fn results_are_matched_by_id_not_position_and_extras_are_noted() {
        let a = audit(
            r#"[{"id":"t3","result":"x y z"},{"id":"t1","result":"x y z"},{"id":"t2","result":"x y z"},{"id":"t9","result":"x"}]"#,
            3,
        );
        let notes = check(&a).unwrap();
        assert!(notes.contains(&"result t9 is not in the plan; not checked".to_string()), "{notes:?}");
    }

    #[test]
    fn the_simulated_label_is_not_a_word() {
        let a = audit(
            r#"[{"id":"t1","result":"[simulated] one"},{"id":"t2","result":"x y"},{"id":"t3","result":"x y"}]"#,
            2,
        );
        assert_eq!(check(&a).unwrap_err(), ["task t1 has 1 word, fewer than min_words 2"]);
    }

    #[test]
    fn min_words_defaults_to_three() {
        let input = r#"{"goal":"g","plan":{"tasks":[{"id":"t1","title":"a"}]},"results":[{"id":"t1","result":"a b"}]}"#;
        let a = parse_audit(input).unwrap();
        assert_eq!(a.min_words, 3);
        assert_eq!(check(&a).unwrap_err(), ["task t1 has 2 words, fewer than min_words 3"]);
    }

    #[test]
    fn an_empty_plan_or_a_repeated_task_fails() {
        let empty = parse_audit(r#"{"goal":"g","plan":{"tasks":[]},"results":[]}"#).unwrap();
        assert_eq!(check(&empty).unwrap_err(), ["the plan has no tasks"]);
        let twice = parse_audit(
            r#"{"goal":"g","plan":{"tasks":[{"id":"t1","title":"a"},{"id":"t1","title":"b"}]},"results":[{"id":"t1","result":"a b c"}]}"#,
        )
        .unwrap();
        assert_eq!(check(&twice).unwrap_err(), ["the plan lists task t1 twice"]);
    }

    #[test]
    fn input_errors_name_the_field() {
        let plan = r#"{"tasks":[{"id":"t1","title":"a"}]}"#;
        for (input, field) in [
            (format!(r#"{{"plan":{plan},"results":[]}}"#), "missing field `goal`".to_string()),
            (r#"{"goal":"g","results":[]}"#.to_string(), "missing field `plan`".to_string()),
            (format!(r#"{{"goal":"g","plan":{plan},"results":[],"extra":1}}"#), "unknown field `extra`".to_string()),
            (r#"{"goal":"g","plan":{"steps":[]},"results":[]}"#.to_string(), "plan: missing field `tasks`".to_string()),
            (format!(r#"{{"goal":"g","plan":{plan},"results":{{}}}}"#), "results must be an array".to_string()),
            (format!(r#"{{"goal":"g","plan":{plan},"results":[null,5]}}"#), "results[1] must be".to_string()),
            (format!(r#"{{"goal":"g","plan":{plan},"results":[],"min_words":-1}}"#), "min_words must be".to_string()),
            (format!(r#"{{"goal":1,"plan":{plan},"results":[]}}"#), "goal must be a string".to_string()),
        ] {
            let error = parse_audit(&input).unwrap_err();
            assert!(error.contains(&field), "{input}: {error}");
        }
    }

    #[test]
    fn the_review_prompt_lists_each_task_with_its_result() {
        let a = audit(r#"[{"id":"t1","result":"done well"},null,null]"#, 3);
        assert_eq!(review_prompt(&a), "Goal: ship\nt1 (a): done well\nt2 (b): \nt3 (c): \n");
    }
}
