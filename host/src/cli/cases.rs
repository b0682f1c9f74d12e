//! Test cases an agent keeps in its folder, `tests/NAME.json`: an input, the
//! journal of the host calls a real run made, and what the agent must
//! answer. `paddock test` replays each against the current build — every
//! LLM answer, board read, callee's answer, clock reading and random number
//! comes from the journal, so it needs no provider, board or callee — and
//! names the first divergence. The calls that act on the world must come in
//! the recorded order; clock readings and random numbers, which interpreters
//! also draw while they start, line up by call and are real past the
//! recorded ones ([`crate::journal::Tape::replaying_effects`]). `paddock record` and `paddock run --record`
//! write them.
//!
//! ```json
//! {
//!   "input": {"name": "ada"},
//!   "journal": [{"call": "blackboard.get", "request": ["visits/ada"], "reply": {"ok": null}}, …],
//!   "output": {"greeting": "Hello, ada!", "visits": 1}
//! }
//! ```
//!
//! What the agent must answer is one of `output` (its output, compared as
//! JSON when it parses as JSON, else as text), `error` (its error's text) or
//! `assert` (JSON pointers into its output and the value each must hold),
//! which may stand beside `output` being left out, so that a case survives
//! changes to the rest of the output. `tenant`, `run` and `env` replay what
//! the recorded run saw.

use crate::journal::Entry;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The folder of an agent's cases, beside its `agent.toml`.
pub const FOLDER: &str = "tests";

/// The largest case file read, in bytes: a journal is capped at 16 MiB of
/// JSON, and its case holds it and little else.
const MAX_FILE: u64 = 24 << 20;

/// One case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What it checks, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The agent's input.
    pub input: Value,
    /// The tenant it runs for [default: the host's default tenant].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The run id it sees (`PADDOCK_RUN`) [default: a new one].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Other variables it sees (a flow step's `PADDOCK_STEP`...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The host calls, in order, with their answers.
    pub journal: Vec<Entry>,
    /// The output it must give.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// The error it must end with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// JSON pointers into its output, each with the value it must hold.
    #[serde(default, rename = "assert", skip_serializing_if = "BTreeMap::is_empty")]
    pub assertions: BTreeMap<String, Value>,
}

impl Case {
    /// A case of a run that answered `result` after making the calls of
    /// `journal`: what it answered is what it must answer.
    pub fn of_run(input: &str, journal: Vec<Entry>, result: &Result<String, String>) -> Result<Case, String> {
        let input =
            serde_json::from_str(input).map_err(|e| format!("the input is not JSON ({e}); a case keeps JSON"))?;
        let (output, error) = match result {
            Ok(text) => (Some(output_value(text)), None),
            Err(e) => (None, Some(e.clone())),
        };
        Ok(Case {
            description: None,
            input,
            tenant: None,
            run: None,
            env: BTreeMap::new(),
            journal,
            output,
            error,
            assertions: BTreeMap::new(),
        })
    }

    /// Reads and checks the case in `file`.
    pub fn load(file: &Path) -> Result<Case, String> {
        let name = file.display();
        let size = std::fs::metadata(file).map_err(|e| format!("{name}: {e}"))?.len();
        if size > MAX_FILE {
            return Err(format!("{name}: {size} bytes is over the {MAX_FILE}-byte limit of a case"));
        }
        let text = std::fs::read_to_string(file).map_err(|e| format!("{name}: {e}"))?;
        let case: Case = serde_json::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
        case.validate().map_err(|e| format!("{name}: {e}"))?;
        Ok(case)
    }

    fn validate(&self) -> Result<(), String> {
        match (&self.output, &self.error) {
            (Some(_), Some(_)) => return Err("`output` and `error` both given; a run ends with one".into()),
            (None, None) if self.assertions.is_empty() => {
                return Err("nothing to check: give `output`, `error` or `assert`".into());
            }
            _ => {}
        }
        if self.error.is_some() && !self.assertions.is_empty() {
            return Err("`assert` looks into an output, and `error` says there is none".into());
        }
        if let Some(bad) = self.assertions.keys().find(|p| !p.is_empty() && !p.starts_with('/')) {
            return Err(format!(
                "assert: {bad:?} is not a JSON pointer (\"\" or starting with \"/\", e.g. \"/greeting\")"
            ));
        }
        if let Some(bad) = self.env.keys().find(|k| k.is_empty() || k.contains('=')) {
            return Err(format!("env: {bad:?} is not a variable name"));
        }
        Ok(())
    }

    /// Writes the case to `file` (its folder made when missing), readable
    /// and diffable: pretty JSON ending with a newline.
    pub fn save(&self, file: &Path) -> Result<(), String> {
        let text = self.to_text().map_err(|e| format!("{}: {e}", file.display()))?;
        let folder = file.parent().filter(|p| !p.as_os_str().is_empty());
        folder.map_or(Ok(()), std::fs::create_dir_all).map_err(|e| format!("{}: {e}", file.display()))?;
        std::fs::write(file, text).map_err(|e| format!("{}: {e}", file.display()))
    }

    /// The case as its file holds it: a key a line, and a journal entry a
    /// line, so that a diff of two recordings shows the calls that changed.
    fn to_text(&self) -> serde_json::Result<String> {
        let Value::Object(fields) = serde_json::to_value(self)? else { unreachable!("a case is an object") };
        let mut lines = Vec::new();
        for key in ["description", "input", "tenant", "run", "env", "journal", "output", "error", "assert"] {
            let Some(value) = fields.get(key) else { continue };
            let text = match value {
                // Its entries as declared: call, request, reply.
                Value::Array(_) if key == "journal" && !self.journal.is_empty() => {
                    let entries: Vec<String> = self
                        .journal
                        .iter()
                        .map(|e| serde_json::to_string(e).map(|e| format!("    {e}")))
                        .collect::<Result<_, _>>()?;
                    format!("[\n{}\n  ]", entries.join(",\n"))
                }
                other => other.to_string(),
            };
            lines.push(format!("  {}: {text}", Value::from(key)));
        }
        Ok(format!("{{\n{}\n}}\n", lines.join(",\n")))
    }

    /// The input as the agent gets it.
    pub fn input_text(&self) -> String {
        self.input.to_string()
    }

    /// How the run's `result` (output text, or error text) differs from what
    /// the case asks for; `None` when it passes.
    pub fn mismatch(&self, result: &Result<String, String>) -> Option<String> {
        match (result, &self.error) {
            (Err(got), Some(want)) if got == want => None,
            (Err(got), Some(want)) => Some(format!("the error differs: expected {want:?}, got {got:?}")),
            (Ok(got), Some(want)) => Some(format!("expected the error {want:?}, got the output {}", abbreviate(got))),
            (Err(got), None) => Some(format!("expected an output, got the error {got:?}")),
            (Ok(got), None) => {
                let got = output_value(got);
                if let Some(want) = &self.output
                    && let Some(at) = first_difference(want, &got, String::new())
                {
                    return Some(at);
                }
                self.assertions.iter().find_map(|(pointer, want)| match got.pointer(pointer) {
                    Some(value) if value == want => None,
                    Some(value) => Some(format!("assert {pointer}: expected {want}, got {value}")),
                    None => Some(format!("assert {pointer}: the output has nothing there")),
                })
            }
        }
    }
}

/// An output as JSON when it parses as JSON, else its text as a JSON string.
fn output_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// The first place where `got` is not `want`, as a JSON pointer with both
/// values: a key missing or added, an array's length, a value.
fn first_difference(want: &Value, got: &Value, at: String) -> Option<String> {
    let place = if at.is_empty() { "the output".to_string() } else { format!("output {at}") };
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (key, value) in w {
                let inner = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                match g.get(key) {
                    Some(other) => {
                        if let Some(d) = first_difference(value, other, inner) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("output {inner}: expected {}, got nothing", short(value))),
                }
            }
            let added = g.keys().find(|k| !w.contains_key(*k))?;
            Some(format!("{place}: has {added:?}, which the case does not expect"))
        }
        (Value::Array(w), Value::Array(g)) => {
            for (i, (value, other)) in w.iter().zip(g).enumerate() {
                if let Some(d) = first_difference(value, other, format!("{at}/{i}")) {
                    return Some(d);
                }
            }
            (w.len() != g.len()).then(|| format!("{place}: expected {} items, got {}", w.len(), g.len()))
        }
        _ if want == got => None,
        _ => Some(format!("{place}: expected {}, got {}", short(want), short(got))),
    }
}

fn short(value: &Value) -> String {
    abbreviate(&value.to_string())
}

fn abbreviate(text: &str) -> String {
    crate::flow::events::abbreviate(text, 200)
}

/// The cases in `folder` (an agent's `tests/`), sorted by name; none when it
/// does not exist.
pub fn in_folder(folder: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", folder.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Where a case named `name` goes: a path as given (ending in `.json`), or
/// `tests/NAME.json` in the agent's folder.
pub fn destination(agent_folder: &Path, name: &str) -> Result<PathBuf, String> {
    if name.ends_with(".json") {
        return Ok(PathBuf::from(name));
    }
    crate::core::names::validate_agent(name).map_err(|why| format!("case name {name:?}: {why}"))?;
    Ok(agent_folder.join(FOLDER).join(format!("{name}.json")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn case(output: Option<Value>, error: Option<&str>, assertions: &[(&str, Value)]) -> Case {
        Case {
            description: None,
            input: json!({}),
            tenant: None,
            run: None,
            env: BTreeMap::new(),
            journal: Vec::new(),
            output,
            error: error.map(str::to_string),
            assertions: assertions.iter().map(|(p, v)| (p.to_string(), v.clone())).collect(),
        }
    }

    #[test]
    fn an_output_that_differs_is_named_by_the_pointer_of_its_first_difference() {
        let c = case(Some(json!({"greeting": "Hello, ada!", "visits": 1, "tags": ["a", "b"]})), None, &[]);
        let same = r#"{"visits":1,"greeting":"Hello, ada!","tags":["a","b"]}"#;
        assert_eq!(c.mismatch(&Ok(same.into())), None);
        assert_eq!(
            c.mismatch(&Ok(r#"{"greeting":"Hi, ada!","visits":2,"tags":["a","b"]}"#.into())),
            Some(r#"output /greeting: expected "Hello, ada!", got "Hi, ada!""#.into())
        );
        assert_eq!(
            c.mismatch(&Ok(r#"{"greeting":"Hello, ada!","visits":1,"tags":["a"]}"#.into())),
            Some("output /tags: expected 2 items, got 1".into())
        );
        assert_eq!(
            c.mismatch(&Ok(r#"{"greeting":"Hello, ada!","visits":1}"#.into())),
            Some(r#"output /tags: expected ["a","b"], got nothing"#.into())
        );
        assert_eq!(
            c.mismatch(&Ok(r#"{"greeting":"Hello, ada!","visits":1,"tags":["a","b"],"x":0}"#.into())),
            Some(r#"the output: has "x", which the case does not expect"#.into())
        );
        assert_eq!(
            c.mismatch(&Err("agent \"a\" returned an error: no".into())),
            Some(r#"expected an output, got the error "agent \"a\" returned an error: no""#.into())
        );
    }

    #[test]
    fn a_text_output_is_compared_as_text_and_an_error_by_its_whole_text() {
        let text = case(Some(json!("plain words")), None, &[]);
        assert_eq!(text.mismatch(&Ok("plain words".into())), None);
        assert_eq!(
            text.mismatch(&Ok("other words".into())),
            Some(r#"the output: expected "plain words", got "other words""#.into())
        );
        let failing = case(None, Some("agent \"a\" returned an error: no"), &[]);
        assert_eq!(failing.mismatch(&Err("agent \"a\" returned an error: no".into())), None);
        assert_eq!(
            failing.mismatch(&Ok("{}".into())),
            Some(r#"expected the error "agent \"a\" returned an error: no", got the output {}"#.into())
        );
    }

    #[test]
    fn assertions_check_only_the_places_they_name() {
        let c = case(None, None, &[("/greeting", json!("Hello, ada!")), ("/fun_fact/model", json!("m"))]);
        assert_eq!(c.mismatch(&Ok(r#"{"greeting":"Hello, ada!","fun_fact":{"model":"m"},"more":1}"#.into())), None);
        assert_eq!(
            c.mismatch(&Ok(r#"{"greeting":"Hello, ada!","fun_fact":{}}"#.into())),
            Some("assert /fun_fact/model: the output has nothing there".into())
        );
        assert_eq!(
            c.mismatch(&Ok(r#"{"greeting":"Hi","fun_fact":{"model":"m"}}"#.into())),
            Some(r#"assert /greeting: expected "Hello, ada!", got "Hi""#.into())
        );
    }

    #[test]
    fn a_case_file_that_asks_nothing_or_two_ends_is_refused_naming_the_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.json");
        let refused = |text: &str| {
            std::fs::write(&file, text).unwrap();
            Case::load(&file).unwrap_err().replace(&file.display().to_string(), "F")
        };
        assert_eq!(refused(r#"{"input":{},"journal":[]}"#), "F: nothing to check: give `output`, `error` or `assert`");
        assert_eq!(
            refused(r#"{"input":{},"journal":[],"output":1,"error":"e"}"#),
            "F: `output` and `error` both given; a run ends with one"
        );
        assert_eq!(
            refused(r#"{"input":{},"journal":[],"assert":{"greeting":1}}"#),
            r#"F: assert: "greeting" is not a JSON pointer ("" or starting with "/", e.g. "/greeting")"#
        );
        assert!(refused(r#"{"input":{},"journal":[],"outputs":1}"#).starts_with("F: unknown field `outputs`"));
        assert!(refused(r#"{"journal":[],"output":1}"#).starts_with("F: missing field `input`"));
    }

    #[test]
    fn a_recorded_run_becomes_a_case_that_it_passes_and_that_reads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let journal = vec![Entry { call: "clock.wall".into(), request: json!([]), reply: json!([1, 2]) }];
        let c = Case::of_run(r#"{"name":"ada"}"#, journal, &Ok(r#"{"n":1}"#.into())).unwrap();
        assert_eq!(c.mismatch(&Ok(r#"{"n":1}"#.into())), None);
        let file = destination(dir.path(), "ada").unwrap();
        assert_eq!(file, dir.path().join("tests/ada.json"));
        c.save(&file).unwrap();
        assert_eq!(Case::load(&file).unwrap(), c);
        assert_eq!(in_folder(&dir.path().join("tests")).unwrap(), [file]);
        assert_eq!(
            Case::of_run("not json", Vec::new(), &Ok(String::new())).unwrap_err(),
            "the input is not JSON (expected ident at line 1 column 2); a case keeps JSON"
        );
        assert_eq!(
            destination(dir.path(), "../x").unwrap_err(),
            format!("case name \"../x\": {}", crate::core::names::validate_agent("../x").unwrap_err())
        );
    }
}
