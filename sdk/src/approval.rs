//! Asking a person.

/// Asks `question`, offering `options`, waiting at most `timeout_ms`; returns
/// the option chosen.
pub fn ask(question: &str, options: &[&str], timeout_ms: u32) -> Result<String, String> {
    let options: Vec<String> = options.iter().map(|o| o.to_string()).collect();
    crate::bindings::paddock::agent::approval::ask(question, &options, timeout_ms)
}
