//! Behaviour of the fake provider across its HTTP boundary: each dialect's
//! wire format, each fault, the script, chaos, the control API and the binary.

mod anthropic;
mod faults;
mod gemini;
mod ollama;
mod openai;
mod script;
mod util;
