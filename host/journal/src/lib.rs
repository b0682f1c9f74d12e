//! The journal of one invocation: every host call it made (LLM answers,
//! blackboard reads and writes, calls to other agents, approvals, the clock
//! and random numbers), in order, so that a replay can serve the same
//! answers without calling anything and report the first call that differs.
//!
//! A [`Tape`] records or replays; it is shared (by `Arc`) between the
//! invocation's capabilities and whoever runs it. Each capability passes
//! every call through [`through`] (or [`through_sync`]): with no tape the
//! call just runs; recording, it runs and its arguments and answer are kept;
//! replaying, it does not run at all and the recorded answer comes back.
//!
//! ```
//! use paddock_journal::{Tape, through_sync};
//! use paddock_journal::Divergence;
//!
//! let tape = Tape::recording();
//! let roll = |tape: &Tape, sides: u32| {
//!     through_sync(Some(tape), "dice.roll", (sides,), |(sides,)| Ok::<_, Divergence>(sides / 2))
//! };
//! assert_eq!(roll(&tape, 6), Ok(3));
//!
//! // Replayed, the answer is the recorded one, whatever the real call would say.
//! let replay = Tape::replaying(tape.entries());
//! assert_eq!(through_sync(Some(&*replay), "dice.roll", (6,), |_| Ok::<u32, Divergence>(99)), Ok(3));
//! assert_eq!(replay.finish(), None);
//!
//! // A call with other arguments diverges.
//! let replay = Tape::replaying(tape.entries());
//! let error = roll(&replay, 20).unwrap_err();
//! assert_eq!(error.to_string(), "replay diverged at call #1: the agent called dice.roll(20) but the journal has dice.roll(6)");
//! ```
//!
//! **What is journaled**: `llm.complete`, `llm.stream` and each
//! `llm.stream.next`/`usage`/`response` on a stream (numbered in the order
//! the streams were opened), `llm.embed`; every `blackboard.*` call; `agents.call`
//! (the callee's answer: in a replay the callee does not run); `approval.ask`;
//! `clock.wall`, `clock.monotonic`, `clock.subscribe-instant` (the wait a
//! deadline came to), `random.secure`, `random.secure-u64`, `random.insecure`,
//! `random.insecure-u64`, `random.insecure-seed`. Each answer is kept as the
//! agent saw it, refusals (`denied`, `budget-exceeded`...) included.
//!
//! **What is not**: `log` calls and captured stdout/stderr (they change nothing
//! the agent reads); the clocks' resolutions (constants of the host); sleeps
//! for a duration (they answer nothing, and a replay waits as long); the
//! environment, which the host sets (replay with the same run id and
//! variables); files in granted directories. A call that traps (an oversized
//! argument) traps before it reaches the journal, in a replay too.

mod ambient;
mod divergence;

pub use ambient::is_ambient;

pub use divergence::{Divergence, DivergenceKind};

use futures_util::future::Either;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::io;
use std::sync::Arc;

/// The most a journal keeps of one invocation, in bytes of JSON. A few
/// hundred LLM answers fit; an agent past it is flooding (a loop of large
/// reads), and a guest must not make the host hold memory without bound.
/// Past the cap the tape stops recording and says it was truncated.
pub const MAX_BYTES: usize = 16 << 20;

/// The call name of the last entry of a truncated journal; its request holds
/// the number of the last call recorded and the cap.
pub const TRUNCATED: &str = "journal.truncated";

/// The request of a call without arguments: `[]` (the unit `()` would be `null`).
pub const NO_ARGS: [(); 0] = [];

/// The bytes an entry adds besides its call name, request and reply:
/// `{"call":"","request":,"reply":},`.
const ENTRY_OVERHEAD: usize = 32;

/// One host call and what the host answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The call, e.g. `llm.complete`, `blackboard.get`, `clock.wall`.
    pub call: String,
    /// Its arguments, as a JSON array.
    pub request: serde_json::Value,
    /// The host's answer.
    pub reply: serde_json::Value,
}

/// Records or replays the host calls of one invocation.
#[derive(Debug)]
pub struct Tape {
    mode: Mode,
    /// The cap on what a recording keeps, in bytes of JSON.
    limit: usize,
}

#[derive(Debug)]
enum Mode {
    Recording(Mutex<Recorder>),
    Replaying(Mutex<Player>),
}

/// A recording keeps JSON text, not `serde_json::Value`s: a value costs up to
/// 16 times its text (a byte of a blackboard value is a 32-byte `Value`), and
/// the cap is meant to bound memory.
#[derive(Debug, Default)]
struct Recorder {
    entries: Vec<Recorded>,
    bytes: usize,
    truncated: bool,
}

#[derive(Debug)]
struct Recorded {
    call: &'static str,
    request: Box<str>,
    reply: Box<str>,
}

#[derive(Debug)]
struct Player {
    entries: Vec<Entry>,
    next: usize,
    truncated_after: Option<(usize, usize)>,
    divergence: Option<Divergence>,
    /// Replaying as a test case: the clock's and random entries, apart.
    ambient: Option<ambient::Ambient>,
}

impl Player {
    /// The number, in the journal, of the entry at `index` of `entries`.
    fn number(&self, index: usize) -> usize {
        self.ambient.as_ref().map_or(index + 1, |a| a.number(index))
    }
}

/// A call whose answer arrives after other calls of the agent (an HTTP
/// exchange the agent goes on beside) keeps the place it was made at.
#[derive(Debug)]
pub enum Reserved<R> {
    /// Replaying: the recorded answer (`None` when the recorded call never
    /// got one); the call must not run.
    Answer(Option<R>),
    /// Recording: run it, then [`Tape::fill`] its place (`None`: not kept,
    /// the journal is at its cap).
    Place(Option<usize>),
}

/// What the tape says about a call before it runs.
enum Cue<R> {
    /// Replaying: the recorded answer; the call must not run.
    Answer(R),
    /// Run it, and record it when its request (as JSON) is given.
    Perform(Option<Box<str>>),
}

impl Tape {
    /// A tape that records every call, up to [`MAX_BYTES`].
    pub fn recording() -> Arc<Tape> {
        Self::recording_up_to(MAX_BYTES)
    }

    fn recording_up_to(limit: usize) -> Arc<Tape> {
        Arc::new(Tape { mode: Mode::Recording(Mutex::default()), limit })
    }

    /// A tape that answers each call from `entries`, in order, calling
    /// nothing. A last entry named [`TRUNCATED`] marks a recording that
    /// stopped at its cap.
    pub fn replaying(mut entries: Vec<Entry>) -> Arc<Tape> {
        let mut truncated_after = None;
        if let Some(last) = entries.last().filter(|e| e.call == TRUNCATED) {
            let number = |i: usize| last.request.get(i).and_then(serde_json::Value::as_u64).unwrap_or(0) as usize;
            truncated_after = Some((number(0), number(1)));
            entries.pop();
        }
        let player = Player { entries, next: 0, truncated_after, divergence: None, ambient: None };
        Arc::new(Tape { mode: Mode::Replaying(Mutex::new(player)), limit: MAX_BYTES })
    }

    /// A tape that replays `entries` as a test case does: every call must
    /// come in the recorded order but the clock's readings and random
    /// numbers ([`is_ambient`]), which are answered from the recorded ones
    /// of the same call while they line up and by the real clock and random
    /// source past them — an interpreter draws them as it starts, as many
    /// times as its version decides. Its [`entries`](Self::entries) are the others.
    pub fn replaying_effects(entries: Vec<Entry>) -> Arc<Tape> {
        let (ambient, effects) = ambient::Ambient::split(entries);
        let tape = Self::replaying(effects);
        if let Mode::Replaying(player) = &tape.mode {
            player.lock().ambient = Some(ambient);
        }
        tape
    }

    /// The calls recorded so far, ending with a [`TRUNCATED`] entry when
    /// recording stopped at the cap; a replaying tape's journal.
    pub fn entries(&self) -> Vec<Entry> {
        match &self.mode {
            Mode::Recording(rec) => {
                let rec = rec.lock();
                let parse = |text: &str| serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
                let mut entries: Vec<Entry> = rec
                    .entries
                    .iter()
                    .map(|e| Entry { call: e.call.to_string(), request: parse(&e.request), reply: parse(&e.reply) })
                    .collect();
                if rec.truncated {
                    entries.push(truncation_marker(rec.entries.len(), self.limit));
                }
                entries
            }
            Mode::Replaying(player) => {
                let player = player.lock();
                let mut entries = player.entries.clone();
                if let Some((after, limit)) = player.truncated_after {
                    entries.push(truncation_marker(after, limit));
                }
                entries
            }
        }
    }

    /// Writes what [`entries`](Self::entries) returns as a JSON array,
    /// without building a `serde_json::Value` per entry.
    pub fn write_json(&self, mut out: impl io::Write) -> io::Result<()> {
        let Mode::Recording(rec) = &self.mode else {
            return serde_json::to_writer(out, &self.entries()).map_err(io::Error::other);
        };
        let rec = rec.lock();
        out.write_all(b"[")?;
        for (i, e) in rec.entries.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            write!(out, r#"{comma}{{"call":"{}","request":{},"reply":{}}}"#, e.call, e.request, e.reply)?;
        }
        if rec.truncated {
            let comma = if rec.entries.is_empty() { "" } else { "," };
            let marker = serde_json::to_string(&truncation_marker(rec.entries.len(), self.limit))?;
            write!(out, "{comma}{marker}")?;
        }
        out.write_all(b"]")
    }

    /// Whether this tape replays a journal (rather than recording one).
    pub fn is_replay(&self) -> bool {
        matches!(self.mode, Mode::Replaying(_))
    }

    /// Whether recording stopped at the cap ([`MAX_BYTES`]), or the journal
    /// replayed was recorded so.
    pub fn truncated(&self) -> bool {
        match &self.mode {
            Mode::Recording(rec) => rec.lock().truncated,
            Mode::Replaying(player) => player.lock().truncated_after.is_some(),
        }
    }

    /// The bytes of JSON a recording holds.
    pub fn bytes(&self) -> usize {
        match &self.mode {
            Mode::Recording(rec) => rec.lock().bytes,
            Mode::Replaying(_) => 0,
        }
    }

    /// The first call at which the replay differed from the journal, if one did.
    pub fn divergence(&self) -> Option<Divergence> {
        match &self.mode {
            Mode::Recording(_) => None,
            Mode::Replaying(player) => player.lock().divergence.clone(),
        }
    }

    /// How many calls of the journal the replay has not made (yet).
    pub fn remaining(&self) -> usize {
        match &self.mode {
            Mode::Recording(_) => 0,
            Mode::Replaying(player) => {
                let player = player.lock();
                player.entries.len() - player.next
            }
        }
    }

    /// Ends a replay once its invocation has ended: the first divergence, or
    /// one saying the agent finished before the journal did (a journal
    /// truncated at its cap had more calls than it holds). `None` when the
    /// replay made exactly the calls recorded, and always for a recording.
    pub fn finish(&self) -> Option<Divergence> {
        let Mode::Replaying(player) = &self.mode else { return None };
        let mut player = player.lock();
        if player.divergence.is_none() {
            let call = player.number(player.next);
            let remaining = player.entries.len() - player.next;
            let kind = match (player.entries.get(player.next), player.truncated_after) {
                (Some(e), _) => {
                    Some(DivergenceKind::Unfinished { remaining, next: divergence::quote(&e.call, &e.request) })
                }
                (None, Some((after, limit))) => Some(DivergenceKind::FinishedAtTruncation { after, limit }),
                (None, None) => None,
            };
            player.divergence = kind.map(|kind| Divergence { call, kind });
        }
        player.divergence.clone()
    }

    /// Before a call runs: the recorded answer when replaying (or the
    /// divergence), else whether to record it.
    fn cue<Q: Serialize, R: DeserializeOwned>(&self, call: &'static str, request: &Q) -> Result<Cue<R>, Divergence> {
        match &self.mode {
            Mode::Recording(rec) => {
                let room = {
                    let rec = rec.lock();
                    if rec.truncated {
                        return Ok(Cue::Perform(None));
                    }
                    self.limit - rec.bytes
                };
                let text = bounded_json(request, room.saturating_sub(ENTRY_OVERHEAD + call.len()));
                if text.is_none() {
                    rec.lock().truncated = true;
                }
                Ok(Cue::Perform(text))
            }
            Mode::Replaying(player) => match is_ambient(call) {
                true => self.ambient_answer(player, call, request),
                false => self.answer(player, call, request).map(Cue::Answer),
            },
        }
    }

    /// Replaying a clock reading or a random draw: the recorded answer as a
    /// test case replays it (lined up or the real one), else as any other call.
    fn ambient_answer<Q: Serialize, R: DeserializeOwned>(
        &self,
        player: &Mutex<Player>,
        call: &'static str,
        request: &Q,
    ) -> Result<Cue<R>, Divergence> {
        let mut locked = player.lock();
        let Some(ambient) = locked.ambient.as_mut() else {
            drop(locked);
            return self.answer(player, call, request).map(Cue::Answer);
        };
        let asked = serde_json::to_value(request).unwrap_or(serde_json::Value::Null);
        match ambient.take(call, &asked).map(R::deserialize) {
            Some(Ok(reply)) => Ok(Cue::Answer(reply)),
            // Past the readings recorded, or one that no longer reads: the real one.
            Some(Err(_)) | None => Ok(Cue::Perform(None)),
        }
    }

    /// Replaying: the next entry's answer, if the call is the one recorded.
    fn answer<Q: Serialize, R: DeserializeOwned>(
        &self,
        player: &Mutex<Player>,
        call: &'static str,
        request: &Q,
    ) -> Result<R, Divergence> {
        // Through the same JSON text as a recording, so a number compares
        // equal however it was written (an f32 is written as its shortest form).
        let asked = serde_json::to_string(request)
            .and_then(|text| serde_json::from_str(&text))
            .unwrap_or(serde_json::Value::Null);
        let mut player = player.lock();
        if let Some(d) = &player.divergence {
            return Err(d.clone());
        }
        let number = player.number(player.next);
        let called = || divergence::quote(call, &asked);
        let found = match (player.entries.get(player.next), player.truncated_after) {
            // Read from the entry in place: cloning its value would cost more than reading it.
            (Some(e), _) if e.call == call && e.request == asked => Ok(R::deserialize(&e.reply)),
            (Some(e), _) => {
                Err(DivergenceKind::Differs { called: called(), recorded: divergence::quote(&e.call, &e.request) })
            }
            (None, Some((after, limit))) => Err(DivergenceKind::Truncated { called: called(), after, limit }),
            (None, None) => Err(DivergenceKind::Ended { called: called() }),
        };
        let kind = match found {
            Ok(Ok(answer)) => {
                player.next += 1;
                return Ok(answer);
            }
            Ok(Err(e)) => DivergenceKind::Unreadable { recorded: called(), error: e.to_string() },
            Err(kind) => kind,
        };
        let d = Divergence { call: number, kind };
        player.divergence = Some(d.clone());
        Err(d)
    }

    /// Takes the next place for `call`, whose answer [`fill`](Self::fill)
    /// gives later: its place in the journal is where the agent made it, not
    /// where its answer arrived, so a replay meets it in the same order.
    /// Replaying, the recorded answer.
    pub fn reserve<Q: Serialize, R: DeserializeOwned>(
        &self,
        call: &'static str,
        request: &Q,
    ) -> Result<Reserved<R>, Divergence> {
        let text = match self.cue::<Q, Option<R>>(call, request)? {
            Cue::Answer(reply) => return Ok(Reserved::Answer(reply)),
            Cue::Perform(None) => return Ok(Reserved::Place(None)),
            Cue::Perform(Some(text)) => text,
        };
        let Mode::Recording(rec) = &self.mode else { return Ok(Reserved::Place(None)) };
        let mut rec = rec.lock();
        let fixed = ENTRY_OVERHEAD + call.len() + text.len() + "null".len();
        if rec.truncated || rec.bytes + fixed > self.limit {
            rec.truncated = true;
            return Ok(Reserved::Place(None));
        }
        rec.bytes += fixed;
        rec.entries.push(Recorded { call, request: text, reply: "null".into() });
        Ok(Reserved::Place(Some(rec.entries.len() - 1)))
    }

    /// Records the answer of a call at the place [`reserve`](Self::reserve)
    /// took. An answer past the cap leaves the place without one (`null`).
    pub fn fill<R: Serialize>(&self, place: Option<usize>, reply: &R) {
        let (Mode::Recording(rec), Some(at)) = (&self.mode, place) else { return };
        let room = self.limit + "null".len() - rec.lock().bytes;
        let text = bounded_json(&Some(reply), room);
        let mut rec = rec.lock();
        match text {
            Some(text) if at < rec.entries.len() => {
                rec.bytes = rec.bytes + text.len() - "null".len();
                rec.entries[at].reply = text;
            }
            _ => rec.truncated = true,
        }
    }

    /// After a call ran: records it, if its request was recorded and the
    /// reply fits under the cap.
    fn commit<R: Serialize>(&self, call: &'static str, request: Option<Box<str>>, reply: &R) {
        let (Mode::Recording(rec), Some(request)) = (&self.mode, request) else { return };
        let room = self.limit - rec.lock().bytes;
        let fixed = ENTRY_OVERHEAD + call.len() + request.len();
        let reply = room.checked_sub(fixed).and_then(|room| bounded_json(reply, room));
        let mut rec = rec.lock();
        match reply {
            Some(reply) if !rec.truncated => {
                rec.bytes += fixed + reply.len();
                rec.entries.push(Recorded { call, request, reply });
            }
            _ => rec.truncated = true,
        }
    }
}

/// Runs a host call through `tape`: without one, `real` runs and nothing
/// else happens (nothing is serialized or allocated). Recording, `real` runs
/// and the call is kept with `request` (the call's arguments, as a tuple)
/// and its answer. Replaying, `real` does not run: the recorded answer is
/// returned, or the [`Divergence`] (as `X`) when the agent's call is not the
/// one recorded.
///
/// A trap from `real` (an `Err`) is not recorded: it ends the invocation.
pub fn through<Q, R, X, F, Fut>(
    tape: Option<&Tape>,
    call: &'static str,
    request: Q,
    real: F,
) -> impl Future<Output = Result<R, X>>
where
    Q: Serialize,
    R: Serialize + DeserializeOwned,
    X: From<Divergence>,
    F: FnOnce(Q) -> Fut,
    Fut: Future<Output = Result<R, X>>,
{
    // Without a tape the call's future is the real one, no larger: wasmtime
    // boxes each host call's future, and a future that also held the
    // journal's state cost every blackboard call ~40 ns (7%) unjournaled.
    match tape {
        None => Either::Left(real(request)),
        Some(tape) => Either::Right(Box::pin(journaled(tape, call, request, real))),
    }
}

async fn journaled<Q, R, X, F, Fut>(tape: &Tape, call: &'static str, request: Q, real: F) -> Result<R, X>
where
    Q: Serialize,
    R: Serialize + DeserializeOwned,
    X: From<Divergence>,
    F: FnOnce(Q) -> Fut,
    Fut: Future<Output = Result<R, X>>,
{
    let pending = match tape.cue(call, &request)? {
        Cue::Answer(reply) => return Ok(reply),
        Cue::Perform(pending) => pending,
    };
    let reply = real(request).await?;
    tape.commit(call, pending, &reply);
    Ok(reply)
}

/// [`through`] for a call that does not wait (a clock, random numbers).
pub fn through_sync<Q, R, X, F>(tape: Option<&Tape>, call: &'static str, request: Q, real: F) -> Result<R, X>
where
    Q: Serialize,
    R: Serialize + DeserializeOwned,
    X: From<Divergence>,
    F: FnOnce(Q) -> Result<R, X>,
{
    let Some(tape) = tape else { return real(request) };
    let pending = match tape.cue(call, &request)? {
        Cue::Answer(reply) => return Ok(reply),
        Cue::Perform(pending) => pending,
    };
    let reply = real(request)?;
    tape.commit(call, pending, &reply);
    Ok(reply)
}

fn truncation_marker(after: usize, limit: usize) -> Entry {
    Entry { call: TRUNCATED.to_string(), request: serde_json::json!([after, limit]), reply: serde_json::Value::Null }
}

/// `16 MiB`, `4 KiB`, `100 bytes`.
fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// `value` as JSON text, if it is at most `limit` bytes. A first pass only
/// counts, and stops at the limit, so an answer of any size costs no memory
/// when it does not fit; the second writes into a buffer of the exact size.
fn bounded_json<T: Serialize + ?Sized>(value: &T, limit: usize) -> Option<Box<str>> {
    struct Count {
        bytes: usize,
        limit: usize,
    }
    impl io::Write for Count {
        #[inline]
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.write_all(bytes).map(|()| bytes.len())
        }
        #[inline]
        fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.bytes += bytes.len();
            if self.bytes > self.limit { Err(io::ErrorKind::FileTooLarge.into()) } else { Ok(()) }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count { bytes: 0, limit };
    serde_json::to_writer(&mut count, value).ok()?;
    let mut text = Vec::with_capacity(count.bytes);
    serde_json::to_writer(&mut text, value).ok()?;
    String::from_utf8(text).ok().map(String::into_boxed_str)
}

#[cfg(test)]
mod tests;
