//! What the SQL backends (SQLite, PostgreSQL) share: integer columns, and
//! the end of a key prefix's range.

/// A count or time as a SQL integer (`bigint`), saturating.
pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A SQL integer as a count or time; a negative one (never written) is 0.
pub(crate) fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The smallest string after every string starting with `prefix`, in code
/// point (= UTF-8 byte) order; `None` when no string is (an empty prefix).
pub(crate) fn past(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::past;

    #[test]
    fn past_a_prefix_is_the_first_string_no_key_under_it_reaches() {
        assert_eq!(past("ab").as_deref(), Some("ac"));
        assert_eq!(past("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(past("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(past("\u{10FFFF}"), None);
        assert_eq!(past(""), None);
    }
}
