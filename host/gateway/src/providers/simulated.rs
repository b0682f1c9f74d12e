//! The `simulated` provider: deterministic replies made up by the host.
//!
//! It serves the offline demo and the benchmarks. The same seed, model and
//! conversation always give the same reply, so tests of agents are
//! deterministic; every reply starts with `[simulated]` so it is never
//! mistaken for a model's answer.

use super::Pieces;
use crate::error::{ErrorClass, ProviderError};
use crate::types::{ChatRequest, Finish, Piece, Reply, Tokens};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The label every simulated reply starts with.
pub const LABEL: &str = "[simulated]";

const WORDS: &[&str] = &[
    "agents",
    "sandbox",
    "paddock",
    "route",
    "token",
    "breaker",
    "retry",
    "stream",
    "tenant",
    "budget",
    "wasm",
    "component",
    "host",
    "blackboard",
    "workflow",
    "quorum",
    "latency",
    "jitter",
    "fallback",
    "answer",
    "plan",
    "review",
    "signal",
    "careful",
    "quickly",
    "together",
    "because",
    "therefore",
    "the",
    "a",
    "is",
    "runs",
    "holds",
    "keeps",
    "of",
    "and",
    "every",
    "safe",
    "fast",
    "fair",
];

/// How a simulated provider behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct SimSettings {
    /// Seeds replies and failures.
    pub seed: u64,
    /// Time before the first token (and before a whole reply).
    pub latency: Duration,
    /// Time between streamed pieces.
    pub chunk_delay: Duration,
    /// Words in a reply (each counts as one output token), unless max-tokens is lower.
    pub reply_tokens: u32,
    /// Fraction of calls that fail (0.0–1.0).
    pub failure_rate: f64,
    /// The classes failures are drawn from.
    pub failures: Vec<ErrorClass>,
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            seed: 0,
            latency: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            reply_tokens: 16,
            failure_rate: 0.0,
            failures: vec![ErrorClass::Server],
        }
    }
}

/// A simulated provider's state: its settings and a call counter that
/// makes its failure sequence deterministic too.
#[derive(Debug, Default)]
pub struct Simulated {
    settings: SimSettings,
    calls: AtomicU64,
}

impl Simulated {
    /// A provider with `settings`.
    pub fn new(settings: SimSettings) -> Self {
        Simulated { settings, calls: AtomicU64::new(0) }
    }

    fn failure(&self) -> Option<ProviderError> {
        let s = &self.settings;
        if s.failure_rate <= 0.0 || s.failures.is_empty() {
            return None;
        }
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let mut rng = fastrand::Rng::with_seed(s.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        if rng.f64() >= s.failure_rate {
            return None;
        }
        let class = s.failures[rng.usize(..s.failures.len())];
        let mut error = ProviderError::new(class, format!("{LABEL} injected {} failure", class.as_str()));
        if class == ErrorClass::RateLimited {
            error.retry_after = Some(Duration::from_secs(1));
        }
        Some(error)
    }

    fn words(&self, model: &str, req: &ChatRequest) -> Vec<String> {
        let mut hash = Fnv::new(self.settings.seed);
        hash.write(model.as_bytes());
        for m in &req.messages {
            hash.write(m.content.as_bytes());
            hash.write(&[0xff]);
        }
        let mut rng = fastrand::Rng::with_seed(hash.0);
        let n = self.settings.reply_tokens.min(req.max_tokens.unwrap_or(u32::MAX)).max(1);
        let mut words = vec![LABEL.to_string()];
        words.extend((0..n).map(|_| WORDS[rng.usize(..WORDS.len())].to_string()));
        words
    }

    fn finish(&self, req: &ChatRequest) -> Finish {
        if req.max_tokens.is_some_and(|m| m < self.settings.reply_tokens) { Finish::Length } else { Finish::Stop }
    }

    /// A whole reply, after the configured latency.
    pub async fn complete(&self, model: &str, req: &ChatRequest) -> Result<Reply, ProviderError> {
        if !self.settings.latency.is_zero() {
            tokio::time::sleep(self.settings.latency).await;
        }
        if let Some(e) = self.failure() {
            return Err(e);
        }
        let words = self.words(model, req);
        Ok(Reply {
            tokens: Some(Tokens { input: req.estimated_input_tokens(), output: words.len() as u32 - 1 }),
            text: words.join(" "),
            tool_calls: Vec::new(),
            finish: self.finish(req),
        })
    }

    /// The same reply a word at a time.
    pub async fn stream(&self, model: &str, req: &ChatRequest) -> Result<Pieces, ProviderError> {
        if !self.settings.latency.is_zero() {
            tokio::time::sleep(self.settings.latency).await;
        }
        if let Some(e) = self.failure() {
            return Err(e);
        }
        let words = self.words(model, req);
        let tokens = Tokens { input: req.estimated_input_tokens(), output: words.len() as u32 - 1 };
        let mut pieces: Vec<Piece> =
            words.into_iter().enumerate().map(|(i, w)| Piece::Text(if i == 0 { w } else { format!(" {w}") })).collect();
        pieces.extend([Piece::Tokens(tokens), Piece::Finish(self.finish(req)), Piece::Done]);
        let delay = self.settings.chunk_delay;
        Ok(Box::pin(futures_util::stream::unfold(pieces.into_iter().enumerate(), move |mut it| async move {
            let (i, piece) = it.next()?;
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Some((Ok(piece), it))
        })))
    }

    /// A deterministic unit vector per input.
    pub async fn embed(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, ProviderError> {
        if !self.settings.latency.is_zero() {
            tokio::time::sleep(self.settings.latency).await;
        }
        Ok(inputs
            .iter()
            .map(|text| {
                let mut hash = Fnv::new(self.settings.seed);
                hash.write(text.as_bytes());
                let mut rng = fastrand::Rng::with_seed(hash.0);
                let v: Vec<f32> = (0..16).map(|_| rng.f32() * 2.0 - 1.0).collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::EPSILON);
                v.into_iter().map(|x| x / norm).collect()
            })
            .collect())
    }
}

/// FNV-1a: stable across Rust releases, unlike `DefaultHasher`, so a seed
/// gives the same replies on every build.
struct Fnv(u64);

impl Fnv {
    fn new(seed: u64) -> Self {
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        h.write(&seed.to_le_bytes());
        h
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Message, Role};
    use futures_util::StreamExt;

    fn request(text: &str) -> ChatRequest {
        ChatRequest { messages: vec![Message::new(Role::User, text)], ..Default::default() }
    }

    #[tokio::test]
    async fn same_seed_and_prompt_give_the_same_labelled_reply() {
        let sim = Simulated::new(SimSettings::default());
        let a = sim.complete("m", &request("hi")).await.unwrap();
        let b = Simulated::new(SimSettings::default()).complete("m", &request("hi")).await.unwrap();
        let c = sim.complete("m", &request("bye")).await.unwrap();
        assert_eq!(a, b);
        assert_ne!(a.text, c.text);
        assert!(a.text.starts_with("[simulated] "), "{}", a.text);
        assert_eq!(a.tokens.unwrap().output, 16);
    }

    #[tokio::test]
    async fn stream_joins_to_the_whole_reply() {
        let sim = Simulated::new(SimSettings::default());
        let whole = sim.complete("m", &request("hi")).await.unwrap();
        let pieces: Vec<Piece> = sim.stream("m", &request("hi")).await.unwrap().map(Result::unwrap).collect().await;
        let text: String =
            pieces.iter().filter_map(|p| if let Piece::Text(t) = p { Some(t.as_str()) } else { None }).collect();
        assert_eq!(text, whole.text);
        assert_eq!(pieces.last(), Some(&Piece::Done));
    }

    #[tokio::test]
    async fn failure_mix_is_deterministic_for_a_seed() {
        let settings = SimSettings {
            failure_rate: 0.5,
            failures: vec![ErrorClass::Server, ErrorClass::RateLimited],
            ..Default::default()
        };
        let run = || async {
            let sim = Simulated::new(settings.clone());
            let mut out = Vec::new();
            for _ in 0..40 {
                out.push(sim.complete("m", &request("x")).await.err().map(|e| e.class));
            }
            out
        };
        let (a, b) = (run().await, run().await);
        assert_eq!(a, b);
        let failed = a.iter().filter(|c| c.is_some()).count();
        assert!((10..=30).contains(&failed), "{failed} of 40 failed at rate 0.5");
    }
}
