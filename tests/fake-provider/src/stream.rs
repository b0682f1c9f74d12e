//! Streams: the answer cut into pieces, a dialect's writer turning each piece
//! into its events, and the faults that stall, cut or corrupt a stream.
//!
//! A "chunk" in [`Fault::StallMidStream`] and [`Fault::CutStream`] is one
//! piece of content: a slice of the text, or a tool call (or, where tool
//! arguments stream in fragments, a call's start or one fragment). The
//! dialect's opening events (OpenAI's role chunk, Anthropic's
//! `message_start`) come before the first piece and are not counted.

use crate::answer::Answer;
use crate::behavior::{FakeToolCall, Fault};
use crate::plan::{Ending, Frames};

/// Pieces sent before [`Fault::ErrorEventAfterOk`] sends its error.
const PIECES_BEFORE_LATE_ERROR: usize = 2;

/// Fragments each tool call's arguments stream in, where they stream.
const ARGUMENT_FRAGMENTS: usize = 2;

pub(crate) enum Piece<'a> {
    Text(&'a str),
    /// A tool call's id and name; its arguments follow in fragments.
    ToolStart {
        index: usize,
        call: &'a FakeToolCall,
    },
    ToolArguments {
        index: usize,
        json: &'a str,
    },
    /// A whole tool call.
    Tool {
        index: usize,
        call: &'a FakeToolCall,
    },
}

/// Writes one dialect's stream events into frames.
pub(crate) trait StreamWriter {
    /// True when tool calls stream as a start and argument fragments
    /// (OpenAI, Anthropic); false when each call comes whole (Gemini, Ollama).
    const FRAGMENTED_TOOLS: bool;
    /// Events before the first of `pieces` pieces.
    fn open(&mut self, out: &mut Frames, pieces: usize);
    fn piece(&mut self, out: &mut Frames, piece: &Piece<'_>);
    /// The finish, the usage and the terminator.
    fn close(&mut self, out: &mut Frames);
    /// The dialect's error in the middle of a stream that began well.
    fn late_error(&mut self, out: &mut Frames);
    /// An event whose JSON does not parse.
    fn malformed(&mut self, out: &mut Frames);
}

/// The whole stream for `answer`, shaped by `fault`.
pub(crate) fn compose<W: StreamWriter>(mut writer: W, answer: &Answer<'_>, fault: Option<&Fault>) -> (Frames, Ending) {
    let pieces = pieces(answer, W::FRAGMENTED_TOOLS);
    let interrupt = fault.and_then(|fault| Interrupt::of(fault, pieces.len()));
    let mut out = Frames::new();
    writer.open(&mut out, pieces.len());
    for i in 0..=pieces.len() {
        if i > 0 {
            out.pause(answer.chunk_delay);
        }
        if let Some((at, interrupt)) = &interrupt
            && *at == i
        {
            match interrupt {
                Interrupt::Stall(duration) => out.pause(*duration),
                Interrupt::Cut => return (out, Ending::Abort),
                Interrupt::LateError => {
                    writer.late_error(&mut out);
                    return (out, Ending::Clean);
                }
                Interrupt::Malformed => writer.malformed(&mut out),
            }
        }
        if let Some(piece) = pieces.get(i) {
            writer.piece(&mut out, piece);
        }
    }
    writer.close(&mut out);
    (out, Ending::Clean)
}

enum Interrupt {
    Stall(std::time::Duration),
    Cut,
    LateError,
    Malformed,
}

impl Interrupt {
    /// What `fault` does to a stream of `len` pieces, and after how many.
    fn of(fault: &Fault, len: usize) -> Option<(usize, Interrupt)> {
        match *fault {
            Fault::StallMidStream { after_chunks, ms } => {
                Some((after_chunks.min(len), Interrupt::Stall(std::time::Duration::from_millis(ms))))
            }
            Fault::CutStream { after_chunks } => Some((after_chunks.min(len), Interrupt::Cut)),
            Fault::ErrorEventAfterOk => Some((PIECES_BEFORE_LATE_ERROR.min(len), Interrupt::LateError)),
            Fault::MalformedJson => Some((0, Interrupt::Malformed)),
            _ => None,
        }
    }
}

fn pieces<'a>(answer: &'a Answer<'_>, fragmented_tools: bool) -> Vec<Piece<'a>> {
    let mut pieces = Vec::with_capacity(answer.chunks + (1 + ARGUMENT_FRAGMENTS) * answer.tool_calls.len());
    split(&answer.text, answer.chunks, |text| pieces.push(Piece::Text(text)));
    for (index, call) in answer.tool_calls.iter().enumerate() {
        if fragmented_tools {
            pieces.push(Piece::ToolStart { index, call });
            split(&call.arguments, ARGUMENT_FRAGMENTS, |json| pieces.push(Piece::ToolArguments { index, json }));
        } else {
            pieces.push(Piece::Tool { index, call });
        }
    }
    pieces
}

/// Calls `each` with up to `n` consecutive, non-empty slices of `text` of
/// about equal length in characters; nothing for empty text.
fn split<'a>(text: &'a str, n: usize, mut each: impl FnMut(&'a str)) {
    let chars = text.chars().count();
    let n = n.min(chars);
    let mut boundaries = text.char_indices().map(|(at, _)| at).chain(std::iter::once(text.len()));
    let (mut start, mut position) = (0, 0);
    for k in 1..=n {
        let end_char = k * chars / n;
        let end = boundaries.nth(end_char - position).unwrap_or(text.len());
        position = end_char + 1;
        each(&text[start..end]);
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(text: &str, n: usize) -> Vec<&str> {
        let mut out = Vec::new();
        split(text, n, |piece| out.push(piece));
        out
    }

    #[test]
    fn split_covers_the_text_in_even_pieces_at_char_boundaries() {
        assert_eq!(split_all("abcdefgh", 4), ["ab", "cd", "ef", "gh"]);
        assert_eq!(split_all("héllo", 2), ["hé", "llo"]);
        assert_eq!(split_all("ab", 4), ["a", "b"]);
        assert!(split_all("", 4).is_empty());
        assert_eq!(split_all("abc", 1), ["abc"]);
    }
}
