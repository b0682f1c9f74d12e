//! A [`Reply`] resolved against the request it answers: the text, the token
//! counts and the finish every dialect then renders.

use std::borrow::Cow;
use std::time::Duration;

use serde_json::Value;

use crate::behavior::{FakeToolCall, Finish, Reply};
use crate::prompt::{Prompt, first_chars, word_count};

/// How many characters of the last user message the default reply quotes.
const QUOTED_CHARS: usize = 60;

pub(crate) struct Answer<'a> {
    pub text: Cow<'a, str>,
    pub tool_calls: &'a [FakeToolCall],
    pub finish: Finish,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub chunks: usize,
    pub chunk_delay: Duration,
    pub first_byte_delay: Duration,
}

impl<'a> Answer<'a> {
    pub fn new(reply: &'a Reply, prompt: &Prompt<'_>) -> Answer<'a> {
        let mut text = match &reply.text {
            Some(text) => Cow::Borrowed(text.as_str()),
            None => Cow::Owned(format!("fake reply to: {}", first_chars(prompt.last_user, QUOTED_CHARS))),
        };
        let mut finish = reply.finish;
        if let Some(max) = prompt.max_tokens
            && let Some(end) = end_of_words(&text, max)
        {
            match &mut text {
                Cow::Borrowed(t) => *t = &t[..end],
                Cow::Owned(t) => t.truncate(end),
            }
            if finish == Finish::Stop {
                finish = Finish::Length;
            }
        }
        let output_tokens = reply.output_tokens.unwrap_or_else(|| {
            word_count(&text) + reply.tool_calls.iter().map(|call| word_count(&call.arguments)).sum::<u32>()
        });
        Answer {
            text,
            tool_calls: &reply.tool_calls,
            finish,
            input_tokens: reply.input_tokens.unwrap_or(prompt.words),
            output_tokens,
            chunks: reply.chunks.max(1),
            chunk_delay: Duration::from_millis(reply.chunk_delay_ms),
            first_byte_delay: Duration::from_millis(reply.first_byte_delay_ms),
        }
    }

    pub fn total_tokens(&self) -> u32 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// The byte offset just past word `max` of `text`, if `text` has more words.
fn end_of_words(text: &str, max: u32) -> Option<usize> {
    let mut words = 0;
    let mut in_word = false;
    for (at, c) in text.char_indices() {
        match (c.is_whitespace(), in_word) {
            (false, false) if words == max => return Some(text[..at].trim_end().len()),
            (false, false) => {
                words += 1;
                in_word = true;
            }
            (true, true) => in_word = false,
            _ => {}
        }
    }
    None
}

/// Tool-call arguments as the JSON value object-taking dialects send; text
/// that is not JSON goes as a string, so a test can still see it arrive.
pub(crate) fn arguments_value(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(max_tokens: Option<u32>) -> Prompt<'static> {
        Prompt { last_user: "tell me about the sea", words: 5, max_tokens, ..Prompt::default() }
    }

    #[test]
    fn default_text_quotes_the_last_user_message() {
        let reply = Reply::default();
        let answer = Answer::new(&reply, &prompt(None));
        assert_eq!(answer.text, "fake reply to: tell me about the sea");
        assert_eq!((answer.input_tokens, answer.output_tokens, answer.finish), (5, 8, Finish::Stop));
    }

    #[test]
    fn a_cap_below_the_text_cuts_it_and_reports_length() {
        let reply = Reply::text("one two  three four");
        let answer = Answer::new(&reply, &prompt(Some(2)));
        assert_eq!(answer.text, "one two");
        assert_eq!((answer.output_tokens, answer.finish), (2, Finish::Length));
        let answer = Answer::new(&reply, &prompt(Some(4)));
        assert_eq!((&*answer.text, answer.finish), ("one two  three four", Finish::Stop));
    }

    #[test]
    fn explicit_counts_win() {
        let reply = Reply { input_tokens: Some(100), output_tokens: Some(7), ..Reply::text("hi") };
        let answer = Answer::new(&reply, &prompt(None));
        assert_eq!((answer.input_tokens, answer.output_tokens, answer.total_tokens()), (100, 7, 107));
    }
}
