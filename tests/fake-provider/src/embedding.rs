//! Fake embeddings: a unit vector per input text, the same for the same
//! text, generated while it is written out.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::prompt::word_count;

/// Dimensions when the request names none: small, so that a benchmark
/// measures the plumbing rather than float formatting.
pub(crate) const DEFAULT_DIMENSIONS: usize = 8;

/// The most dimensions the fake makes, whatever the request asks.
const MAX_DIMENSIONS: usize = 4096;

pub(crate) fn dimensions(requested: &Value) -> usize {
    requested
        .as_u64()
        .map_or(DEFAULT_DIMENSIONS, |n| usize::try_from(n).unwrap_or(MAX_DIMENSIONS).clamp(1, MAX_DIMENSIONS))
}

/// The texts of an `input` field: a string, an array of strings, or token
/// arrays (each embedded as the empty text).
pub(crate) fn inputs(input: &Value) -> Inputs<'_> {
    match input {
        Value::String(text) => Inputs::One(Some(text)),
        Value::Array(items) if items.first().is_some_and(Value::is_number) => Inputs::One(Some("")),
        Value::Array(items) => Inputs::Many(items.iter()),
        _ => Inputs::One(None),
    }
}

#[derive(Clone)]
pub(crate) enum Inputs<'a> {
    One(Option<&'a str>),
    Many(std::slice::Iter<'a, Value>),
}

impl<'a> Iterator for Inputs<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        match self {
            Inputs::One(text) => text.take(),
            Inputs::Many(items) => items.next().map(|item| item.as_str().unwrap_or("")),
        }
    }
}

/// Prompt tokens of some inputs, counted as words.
pub(crate) fn input_words<'a>(inputs: impl Iterator<Item = &'a str>) -> u32 {
    inputs.map(word_count).sum()
}

/// A deterministic unit vector for a text, serialized as an array of floats.
#[derive(Clone, Copy)]
pub(crate) struct Vector<'a> {
    pub text: &'a str,
    pub dimensions: usize,
}

impl Vector<'_> {
    fn raw(&self) -> impl Iterator<Item = f32> {
        let mut rng = fastrand::Rng::with_seed(fnv1a(self.text.as_bytes()));
        (0..self.dimensions).map(move |_| rng.f32() * 2.0 - 1.0)
    }

    /// The values, generated twice (for the norm, then for output) rather than stored.
    pub fn values(&self) -> impl Iterator<Item = f32> {
        let norm = self.raw().map(|v| v * v).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
        self.raw().map(move |v| v / norm)
    }
}

impl Serialize for Vector<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.values())
    }
}

/// The vector as base64 of little-endian `f32`s, as OpenAI sends it for
/// `encoding_format: "base64"` (the default of its Python client).
#[derive(Clone, Copy)]
pub(crate) struct Base64<'a>(pub Vector<'a>);

impl fmt::Display for Base64<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut bytes = self.0.values().flat_map(f32::to_le_bytes);
        loop {
            let group = [bytes.next(), bytes.next(), bytes.next()];
            let Some(first) = group[0] else { return Ok(()) };
            let n = u32::from(first) << 16 | u32::from(group[1].unwrap_or(0)) << 8 | u32::from(group[2].unwrap_or(0));
            let mut out = [b'='; 4];
            let sextets = 2 + group[1..].iter().filter(|b| b.is_some()).count();
            for (i, slot) in out.iter_mut().enumerate().take(sextets) {
                *slot = ALPHABET[(n >> (18 - 6 * i) & 63) as usize];
            }
            f.write_str(std::str::from_utf8(&out).expect("base64 is ASCII"))?;
        }
    }
}

impl Serialize for Base64<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// FNV-1a: a stable hash, so the same text gets the same vector in every run.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn vectors_are_unit_length_and_stable_per_text() {
        let a = Vector { text: "hello", dimensions: 8 };
        let values: Vec<f32> = a.values().collect();
        let norm: f32 = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        assert_eq!(values, a.values().collect::<Vec<_>>());
        assert_ne!(values, Vector { text: "world", dimensions: 8 }.values().collect::<Vec<_>>());
    }

    #[test]
    fn base64_decodes_to_the_float_values() {
        let vector = Vector { text: "x", dimensions: 5 };
        let encoded = Base64(vector).to_string();
        assert_eq!(encoded.len(), 28, "20 bytes take 28 characters with padding");
        assert!(encoded.ends_with('='));
        let decoded = decode(&encoded);
        let floats: Vec<f32> = decoded.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(floats, vector.values().collect::<Vec<_>>());
    }

    fn decode(text: &str) -> Vec<u8> {
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let sextets: Vec<u32> =
            text.bytes().filter(|&b| b != b'=').map(|b| alphabet.find(b as char).unwrap() as u32).collect();
        let mut out = Vec::new();
        for group in sextets.chunks(4) {
            let n = group.iter().enumerate().fold(0, |n, (i, s)| n | s << (18 - 6 * i));
            out.extend_from_slice(&n.to_be_bytes()[1..group.len()]);
        }
        out
    }

    #[test]
    fn inputs_read_strings_arrays_and_token_arrays() {
        assert_eq!(inputs(&json!("a b")).collect::<Vec<_>>(), ["a b"]);
        assert_eq!(inputs(&json!(["a", "b c"])).collect::<Vec<_>>(), ["a", "b c"]);
        assert_eq!(inputs(&json!([1, 2, 3])).count(), 1);
        assert_eq!(inputs(&json!(null)).count(), 0);
        assert_eq!(input_words(inputs(&json!(["a", "b c"]))), 3);
        assert_eq!(dimensions(&json!(null)), DEFAULT_DIMENSIONS);
        assert_eq!(dimensions(&json!(1_000_000)), 4096);
    }
}
