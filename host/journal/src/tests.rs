use super::*;
use serde_json::json;
use std::cell::Cell;

/// What a call answers: its name's length plus the argument, so a replay
/// that answered from the wrong entry would show it.
fn call(tape: Option<&Tape>, name: &'static str, arg: u64, ran: &Cell<u32>) -> Result<u64, Divergence> {
    through_sync(tape, name, (arg,), |(arg,)| {
        ran.set(ran.get() + 1);
        Ok(name.len() as u64 + arg)
    })
}

fn recorded(calls: &[(&'static str, u64)]) -> Vec<Entry> {
    let tape = Tape::recording();
    let ran = Cell::new(0);
    for &(name, arg) in calls {
        call(Some(&tape), name, arg, &ran).unwrap();
    }
    tape.entries()
}

#[test]
fn a_recording_keeps_each_call_with_its_arguments_and_answer_in_order() {
    let tape = Tape::recording();
    let ran = Cell::new(0);
    assert_eq!(call(Some(&tape), "board.get", 7, &ran), Ok(16));
    assert_eq!(call(Some(&tape), "clock.wall", 0, &ran), Ok(10));
    assert_eq!(ran.get(), 2);
    assert_eq!(
        tape.entries(),
        vec![
            Entry { call: "board.get".into(), request: json!([7]), reply: json!(16) },
            Entry { call: "clock.wall".into(), request: json!([0]), reply: json!(10) },
        ]
    );
    assert!(!tape.is_replay() && !tape.truncated());
    assert_eq!(tape.bytes(), 2 * ENTRY_OVERHEAD + "board.get[7]16".len() + "clock.wall[0]10".len());
    assert_eq!((tape.divergence(), tape.remaining(), tape.finish()), (None, 0, None));
}

#[test]
fn a_replay_answers_from_the_journal_and_runs_nothing() {
    let entries = recorded(&[("board.get", 7), ("clock.wall", 0)]);
    let tape = Tape::replaying(entries);
    assert!(tape.is_replay());
    assert_eq!(tape.remaining(), 2);
    let ran = Cell::new(0);
    // The real calls would answer differently: what comes back is the journal's.
    let wrong = |_| Ok::<u64, Divergence>(999);
    assert_eq!(through_sync(Some(&*tape), "board.get", (7u64,), wrong), Ok(16));
    assert_eq!(call(Some(&tape), "clock.wall", 0, &ran), Ok(10));
    assert_eq!(ran.get(), 0);
    assert_eq!((tape.remaining(), tape.finish()), (0, None));
}

#[test]
fn without_a_tape_a_call_runs_and_its_arguments_are_never_serialized() {
    struct Unserializable;
    impl Serialize for Unserializable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            panic!("serialized without a journal")
        }
    }
    let answer = through_sync(None, "x", Unserializable, |_| Ok::<u8, Divergence>(1));
    assert_eq!(answer, Ok(1));
}

#[test]
fn the_async_helper_records_and_replays_like_the_sync_one() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let tape = Tape::recording();
    let answer: Result<Result<u32, String>, Divergence> = rt.block_on(through(
        Some(&tape),
        "approval.ask",
        ("ship it?".to_string(), vec!["yes".to_string()]),
        |(_, options)| async move { Ok(Err(format!("timeout after offering {}", options.len()))) },
    ));
    assert_eq!(answer, Ok(Err("timeout after offering 1".into())));
    let replay = Tape::replaying(tape.entries());
    let again: Result<Result<u32, String>, Divergence> = rt.block_on(through(
        Some(&*replay),
        "approval.ask",
        ("ship it?".to_string(), vec!["yes".to_string()]),
        |_| async { panic!("a replay ran the real call") },
    ));
    assert_eq!(again, answer);
}

#[test]
fn a_call_that_traps_is_not_recorded() {
    let tape = Tape::recording();
    let trapped = through_sync(Some(&*tape), "llm.complete", (1,), |_| {
        Err::<u8, _>(Divergence { call: 0, kind: DivergenceKind::Ended { called: "trap".into() } })
    });
    assert!(trapped.is_err());
    assert_eq!((tape.entries(), tape.bytes()), (vec![], 0));
}

#[test]
fn another_call_diverges_naming_its_number_both_calls_and_their_arguments() {
    let tape = Tape::replaying(recorded(&[("board.get", 7), ("board.get", 8)]));
    let ran = Cell::new(0);
    call(Some(&tape), "board.get", 7, &ran).unwrap();
    let d = call(Some(&tape), "board.put", 8, &ran).unwrap_err();
    assert_eq!(
        d.to_string(),
        "replay diverged at call #2: the agent called board.put(8) but the journal has board.get(8)"
    );
    assert_eq!(d.call, 2);
    assert_eq!(ran.get(), 0);
}

#[test]
fn the_same_call_with_other_arguments_diverges() {
    let tape = Tape::replaying(recorded(&[("board.get", 7)]));
    let d = through_sync(Some(&*tape), "board.get", ("plan", [1, 2]), |_| Ok::<u8, Divergence>(0)).unwrap_err();
    assert_eq!(
        d.to_string(),
        r#"replay diverged at call #1: the agent called board.get("plan",[1,2]) but the journal has board.get(7)"#
    );
}

#[test]
fn only_the_first_divergence_is_kept_and_every_later_call_repeats_it() {
    let tape = Tape::replaying(recorded(&[("a", 1), ("b", 2)]));
    let ran = Cell::new(0);
    let first = call(Some(&tape), "a", 5, &ran).unwrap_err();
    assert_eq!(call(Some(&tape), "a", 1, &ran), Err(first.clone()));
    assert_eq!(tape.divergence(), Some(first.clone()));
    assert_eq!(tape.finish(), Some(first));
    assert_eq!(ran.get(), 0);
}

#[test]
fn a_call_past_the_end_diverges_naming_where_the_journal_ends() {
    let tape = Tape::replaying(recorded(&[("a", 1)]));
    let ran = Cell::new(0);
    call(Some(&tape), "a", 1, &ran).unwrap();
    let d = call(Some(&tape), "b", 2, &ran).unwrap_err();
    assert_eq!(d.to_string(), "replay diverged at call #2: the agent called b(2) but the journal ends after call #1");
    let empty = Tape::replaying(vec![]);
    let d = call(Some(&empty), "b", 2, &ran).unwrap_err();
    assert_eq!(d.to_string(), "replay diverged at call #1: the agent called b(2) but the journal is empty");
}

#[test]
fn a_replay_that_stops_early_diverges_when_finished() {
    let tape = Tape::replaying(recorded(&[("a", 1), ("b", 2), ("c", 3)]));
    let ran = Cell::new(0);
    call(Some(&tape), "a", 1, &ran).unwrap();
    assert_eq!((tape.divergence(), tape.remaining()), (None, 2));
    assert_eq!(
        tape.finish().map(|d| d.to_string()),
        Some(
            "replay diverged at call #2: the agent finished, but the journal has 2 more calls, the next being b(2)"
                .into()
        )
    );
    let tape = Tape::replaying(recorded(&[("a", 1)]));
    assert_eq!(
        tape.finish().map(|d| d.to_string()),
        Some(
            "replay diverged at call #1: the agent finished, but the journal has 1 more call, the next being a(1)"
                .into()
        )
    );
}

#[test]
fn an_answer_of_another_type_diverges_as_unreadable() {
    let entries = vec![Entry { call: "clock.wall".into(), request: json!([]), reply: json!("noon") }];
    let tape = Tape::replaying(entries);
    let d = through_sync(Some(&*tape), "clock.wall", NO_ARGS, |_| Ok::<u64, Divergence>(0)).unwrap_err();
    assert_eq!(
        d.to_string(),
        "replay diverged at call #1: the journal's answer to clock.wall() does not fit the call: invalid type: string \"noon\", expected u64"
    );
}

#[test]
fn quoted_arguments_are_cut_at_200_characters() {
    let long = "é".repeat(300);
    let quoted = divergence::quote("blackboard.put", &json!([long, 1]));
    assert_eq!(quoted, format!("blackboard.put(\"{}…)", "é".repeat(199)));
    assert_eq!(divergence::quote("clock.wall", &json!([])), "clock.wall()");
    assert_eq!(divergence::quote("x", &json!({"a": 1})), r#"x({"a":1})"#);
}

#[test]
fn recording_stops_at_the_cap_and_marks_the_journal_truncated() {
    let tape = Tape::recording_up_to(1024);
    let ran = Cell::new(0);
    let mut n = 0;
    while !tape.truncated() {
        n += 1;
        // Each entry: `{"call":"board.get","request":[N],"reply":N+9},` is about 50 bytes.
        call(Some(&tape), "board.get", n, &ran).unwrap();
    }
    let entries = tape.entries();
    let after = entries.len() - 1;
    assert_eq!(after as u64, n - 1);
    assert!(tape.bytes() <= 1024 && tape.bytes() > 1024 - 60, "{} bytes held", tape.bytes());
    assert_eq!(entries[after], Entry { call: TRUNCATED.into(), request: json!([after, 1024]), reply: json!(null) });
    // Calls go on running, unrecorded.
    assert_eq!(call(Some(&tape), "board.get", 1, &ran), Ok(10));
    assert_eq!(tape.entries().len(), after + 1);

    let replay = Tape::replaying(entries.clone());
    assert!(replay.truncated());
    for i in 1..=after as u64 {
        assert_eq!(call(Some(&replay), "board.get", i, &ran), Ok(9 + i));
    }
    let d = call(Some(&replay), "board.get", n, &ran).unwrap_err();
    assert_eq!(
        d.to_string(),
        format!(
            "replay diverged at call #{n}: the journal was truncated after call #{after} (1 KiB); the agent called board.get({n})"
        )
    );
    // An agent that stops where the recording was cut made fewer calls than the recording.
    let replay = Tape::replaying(entries);
    for i in 1..=after as u64 {
        call(Some(&replay), "board.get", i, &ran).unwrap();
    }
    assert_eq!(
        replay.finish().map(|d| d.to_string()),
        Some(format!(
            "replay diverged at call #{n}: the agent finished, but the journal was truncated after call #{after} (1 KiB), so the recording made more calls"
        ))
    );
}

#[test]
fn an_answer_larger_than_the_cap_is_never_held_whole() {
    let tape = Tape::recording();
    let huge = through_sync(Some(&*tape), "random.secure", (64u64 << 20,), |(len,)| {
        Ok::<_, Divergence>(vec![255u8; len as usize])
    });
    assert_eq!(huge.map(|v| v.len()), Ok(64 << 20));
    assert!(tape.truncated());
    assert_eq!(tape.bytes(), 0);
    assert_eq!(
        tape.entries(),
        vec![Entry { call: TRUNCATED.into(), request: json!([0, MAX_BYTES]), reply: json!(null) }]
    );
}

#[test]
fn a_journal_truncated_at_the_real_cap_says_16_mib() {
    let tape = Tape::recording();
    let six_mib = "x".repeat(6 << 20);
    for i in 0..3u32 {
        through_sync(Some(&*tape), "llm.complete", (i,), |_| Ok::<_, Divergence>(six_mib.clone())).unwrap();
    }
    assert!(tape.truncated());
    let replay = Tape::replaying(tape.entries());
    for i in 0..2u32 {
        through_sync(Some(&*replay), "llm.complete", (i,), |_| Ok::<String, Divergence>(String::new())).unwrap();
    }
    let d = through_sync(Some(&*replay), "llm.complete", (2u32,), |_| Ok::<String, Divergence>(String::new()));
    assert_eq!(
        d.unwrap_err().to_string(),
        "replay diverged at call #3: the journal was truncated after call #2 (16 MiB); the agent called llm.complete(2)"
    );
}

#[test]
fn f32_answers_and_arguments_come_back_bit_for_bit() {
    let mut values = vec![0.1f32, -0.0, 1e-45, f32::MIN_POSITIVE, f32::MAX, f32::MIN, 0.7, 1.0 / 3.0];
    let mut bits = 0x9e37_79b9u32;
    for _ in 0..100_000 {
        bits = bits.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let v = f32::from_bits(bits);
        if v.is_finite() {
            values.push(v);
        }
    }
    let tape = Tape::recording();
    let answer = through_sync(Some(&*tape), "llm.embed", (0.7f32,), |_| Ok::<_, Divergence>(vec![values.clone()]));
    let mut json = Vec::new();
    tape.write_json(&mut json).unwrap();
    let persisted: Vec<Entry> = serde_json::from_slice(&json).unwrap();
    assert_eq!(persisted, tape.entries());
    let replay = Tape::replaying(persisted);
    let again = through_sync(Some(&*replay), "llm.embed", (0.7f32,), |_| Ok::<Vec<Vec<f32>>, Divergence>(vec![]));
    let bits = |v: Result<Vec<Vec<f32>>, Divergence>| v.unwrap()[0].iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(again), bits(answer));
}

#[test]
fn write_json_gives_the_entries_including_the_truncation_marker() {
    let tape = Tape::recording_up_to(200);
    let ran = Cell::new(0);
    for i in 0..5 {
        call(Some(&tape), "blackboard.list", i, &ran).unwrap();
    }
    assert!(tape.truncated());
    let mut json = Vec::new();
    tape.write_json(&mut json).unwrap();
    assert_eq!(serde_json::from_slice::<Vec<Entry>>(&json).unwrap(), tape.entries());
    let mut empty = Vec::new();
    Tape::recording().write_json(&mut empty).unwrap();
    assert_eq!(empty, b"[]");
}

#[test]
fn sizes_are_written_in_the_largest_whole_unit() {
    assert_eq!(size(MAX_BYTES), "16 MiB");
    assert_eq!(size(1024), "1 KiB");
    assert_eq!(size(1000), "1000 bytes");
}

#[test]
fn a_reserved_call_keeps_the_place_it_was_made_at_whenever_its_answer_comes() {
    let tape = Tape::recording();
    let first = tape.reserve::<_, String>("http.request", &("GET", "/a")).unwrap();
    let clock: Result<u64, Divergence> = through_sync(Some(&tape), "clock.now", (), |()| Ok(7));
    assert_eq!(clock, Ok(7));
    let second = tape.reserve::<_, String>("http.request", &("GET", "/b")).unwrap();
    let (Reserved::Place(first), Reserved::Place(second)) = (first, second) else { panic!("recording") };
    tape.fill(second, &"b answered first".to_string());
    tape.fill(first, &"a".to_string());
    let unanswered = tape.reserve::<_, String>("http.request", &("GET", "/c")).unwrap();
    assert!(matches!(unanswered, Reserved::Place(Some(3))), "{unanswered:?}");
    let calls: Vec<(String, serde_json::Value)> = tape.entries().into_iter().map(|e| (e.call, e.reply)).collect();
    assert_eq!(
        calls,
        [
            ("http.request".to_string(), json!("a")),
            ("clock.now".to_string(), json!(7)),
            ("http.request".to_string(), json!("b answered first")),
            ("http.request".to_string(), serde_json::Value::Null),
        ]
    );

    let replay = Tape::replaying(tape.entries());
    let answer = |path: &str| match replay.reserve::<_, String>("http.request", &("GET", path)).unwrap() {
        Reserved::Answer(reply) => reply,
        Reserved::Place(_) => panic!("replaying"),
    };
    assert_eq!(answer("/a").as_deref(), Some("a"));
    assert_eq!(through_sync::<_, u64, Divergence, _>(Some(&replay), "clock.now", (), |()| Ok(0)), Ok(7));
    assert_eq!(answer("/b").as_deref(), Some("b answered first"));
    assert_eq!(answer("/c"), None, "a call that never got its answer replays without one");
    assert_eq!(replay.finish(), None);
}

#[test]
fn a_case_replay_answers_clock_and_random_from_their_own_readings_and_the_real_ones_past_them() {
    let entries = vec![
        Entry { call: "random.secure".into(), request: json!([1]), reply: json!(100) },
        Entry { call: "board.get".into(), request: json!([7]), reply: json!(70) },
        Entry { call: "random.secure".into(), request: json!([1]), reply: json!(101) },
        Entry { call: "clock.wall".into(), request: json!([0]), reply: json!(5) },
    ];
    let tape = Tape::replaying_effects(entries);
    let ran = Cell::new(0);
    // The interpreter draws once more than recorded, and reads the clock before the board.
    assert_eq!(call(Some(&tape), "clock.wall", 0, &ran), Ok(5));
    assert_eq!(call(Some(&tape), "random.secure", 1, &ran), Ok(100));
    assert_eq!(call(Some(&tape), "random.secure", 1, &ran), Ok(101));
    assert_eq!(
        (call(Some(&tape), "random.secure", 1, &ran), ran.get()),
        (Ok(14), 1),
        "past the readings: the real one"
    );
    // A draw of another size is not the one recorded: the real one.
    assert_eq!(call(Some(&tape), "clock.wall", 3, &ran), Ok(13));
    assert_eq!(call(Some(&tape), "board.get", 7, &ran), Ok(70));
    assert_eq!((ran.get(), tape.finish()), (2, None));
    assert_eq!(tape.entries(), [Entry { call: "board.get".into(), request: json!([7]), reply: json!(70) }]);
}

#[test]
fn a_case_replay_still_diverges_on_any_other_call_naming_its_number_in_the_whole_journal() {
    let entries = recorded(&[("random.insecure", 1), ("a", 1), ("clock.monotonic", 0), ("b", 2)]);
    let tape = Tape::replaying_effects(entries.clone());
    let ran = Cell::new(0);
    assert_eq!(call(Some(&tape), "a", 1, &ran), Ok(2));
    let d = call(Some(&tape), "c", 3, &ran).unwrap_err();
    assert_eq!(d.to_string(), "replay diverged at call #4: the agent called c(3) but the journal has b(2)");
    let short = Tape::replaying_effects(entries);
    assert_eq!(call(Some(&short), "a", 1, &ran), Ok(2));
    assert_eq!(
        short.finish().map(|d| d.to_string()).as_deref(),
        Some("replay diverged at call #4: the agent finished, but the journal has 1 more call, the next being b(2)")
    );
    // A strict replay answers the clock and random numbers in order, as any call.
    let strict = Tape::replaying(recorded(&[("random.insecure", 1)]));
    let d = call(Some(&strict), "random.insecure", 2, &ran).unwrap_err();
    assert_eq!(
        d.to_string(),
        "replay diverged at call #1: the agent called random.insecure(2) but the journal has random.insecure(1)"
    );
}
