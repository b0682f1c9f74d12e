//! The `settings` capability: each agent reads the operator's settings of its
//! own name and no one else's; replays see the values the run saw.

use crate::util::*;
use paddock::config::Settings;
use paddock_test_guests::guests;
use std::path::Path;

const CONFIG: &str = "[agents.reader.settings]\nstyle = \"terse\"\nmax-items = \"12\"\n\
                      [agents.other.settings]\nstyle = \"verbose\"\ntoken-hint = \"abc\"\n";

#[tokio::test]
async fn an_agent_reads_its_own_settings_and_no_other_agents() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "reader", guests::CONFIGURED, "");
    plugin(dir.path(), "unset", guests::CONFIGURED, "");
    let rt = runtime_with_plugins(dir.path(), CONFIG);
    let reader = output_json(&run(&rt, "reader", "{}").await);
    assert_eq!(
        reader,
        serde_json::json!({"style": "terse", "max_items": 12, "all": [["max-items", "12"], ["style", "terse"]]})
    );
    let unset = output_json(&run(&rt, "unset", "{}").await);
    assert_eq!(unset, serde_json::json!({"style": null, "max_items": null, "all": []}));
}

#[tokio::test]
async fn a_setting_that_does_not_parse_is_the_agents_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "reader", guests::CONFIGURED, "");
    let rt = runtime_with_plugins(dir.path(), "[agents.reader.settings]\nmax-items = \"many\"\n");
    assert_eq!(
        error_text(&run(&rt, "reader", "{}").await),
        "agent \"reader\" returned an error: setting \"max-items\" = \"many\" is not a valid value"
    );
}

#[test]
fn settings_keys_and_values_are_bounded_naming_the_key() {
    let parse = |text: &str| Settings::parse(text, Path::new("p/paddock.toml")).map(|_| ()).map_err(|e| e.to_string());
    assert_eq!(
        parse("[agents.reader.settings]\n\"\" = \"x\"\n"),
        Err("p/paddock.toml: agents.reader.settings: a key is 1 to 512 bytes with no control characters, not \"\""
            .into())
    );
    assert_eq!(
        parse("[limits]\nmax-arg-bytes = 4\n[agents.reader.settings]\nstyle = \"terse\"\n"),
        Err("p/paddock.toml: agents.reader.settings.style: 5 bytes is over limits.max-arg-bytes (4 bytes)".into())
    );
    assert!(
        parse("[agents.reader.settings]\nmax-items = 12\n")
            .unwrap_err()
            .contains("invalid type: integer `12`, expected a string")
    );
}

#[tokio::test]
async fn a_replay_sees_the_settings_the_run_saw_after_the_operator_changed_them() {
    use paddock::journal::Tape;
    use paddock::runtime::RunOptions;
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "reader", guests::CONFIGURED, "");
    let recording = Tape::recording();
    let rt = runtime_with_plugins(dir.path(), CONFIG);
    let options = RunOptions { journal: Some(recording.clone()), ..Default::default() };
    let recorded = output_json(&run_with(&rt, "reader", "{}", &options).await);
    let entries = recording.entries();
    let calls: Vec<&str> = entries.iter().map(|e| e.call.as_str()).filter(|c| c.starts_with("settings.")).collect();
    assert_eq!(calls, ["settings.get", "settings.get", "settings.get-all"]);

    let changed = runtime_with_plugins(dir.path(), "[agents.reader.settings]\nstyle = \"loud\"\n");
    let options = RunOptions { journal: Some(Tape::replaying(entries)), ..Default::default() };
    assert_eq!(output_json(&run_with(&changed, "reader", "{}", &options).await), recorded);
    assert_eq!(output_json(&run(&changed, "reader", "{}").await)["style"], "loud");
}
