//! Human-friendly units in config files: byte sizes ("64MiB") and durations ("250ms").

use serde::{Deserialize, Deserializer, de};
use std::fmt;
use std::time::Duration;

/// A size in bytes, written as an integer (bytes) or a string with a unit:
/// `B`, `KiB`, `MiB`, `GiB` (powers of 1024) or `KB`, `MB`, `GB` (powers of 1000).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// A size or duration that cannot be read; the text gives examples of what can.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum UnitError {
    /// No number where a size starts.
    #[error("`{text}` is not a size (examples: 65536, \"64KiB\", \"128MiB\")")]
    NotASize {
        /// The size as written (trimmed).
        text: String,
    },
    /// A unit that is not one of B, KiB, MiB, GiB, KB, MB, GB.
    #[error("unknown size unit `{unit}` in `{text}` (use B, KiB, MiB, GiB, KB, MB or GB)")]
    UnknownSizeUnit {
        /// The unit as written.
        unit: String,
        /// The size as written (trimmed).
        text: String,
    },
    /// More bytes than a `u64` holds.
    #[error("size `{text}` is too large")]
    SizeTooLarge {
        /// The size as written (trimmed).
        text: String,
    },
    /// Not humantime's syntax.
    #[error("`{text}` is not a duration ({reason}; examples: \"250ms\", \"30s\", \"5m\")")]
    NotADuration {
        /// The duration as written.
        text: String,
        /// What humantime found wrong. It is in the message, so it is not also
        /// the `source` (a report of the chain would print it twice).
        reason: humantime::DurationError,
    },
}

impl ByteSize {
    /// Parses `"64MiB"`, `"1 GiB"`, `"512"` and the like.
    pub fn parse(text: &str) -> Result<Self, UnitError> {
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit() && c != '_').unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let number: u64 =
            digits.replace('_', "").parse().map_err(|_| UnitError::NotASize { text: text.to_string() })?;
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => return Err(UnitError::UnknownSizeUnit { unit: other.to_string(), text: text.to_string() }),
        };
        number.checked_mul(scale).map(ByteSize).ok_or_else(|| UnitError::SizeTooLarge { text: text.to_string() })
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, scale) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if b >= scale && b.is_multiple_of(scale) {
                return write!(f, "{} {unit}", b / scale);
            }
        }
        // Limits are exact, so only sizes measured (files, usage) reach here.
        match [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)].into_iter().find(|(_, scale)| b >= *scale) {
            Some((unit, scale)) => write!(f, "{:.1} {unit}", b as f64 / scale as f64),
            None => write!(f, "{b} bytes"),
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(t) => ByteSize::parse(&t).map_err(de::Error::custom),
        }
    }
}

/// A duration written as `"250ms"`, `"30s"`, `"5m"` (humantime syntax).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

impl Span {
    /// Parses `"250ms"`, `"1m 30s"` and the like.
    pub fn parse(text: &str) -> Result<Self, UnitError> {
        humantime::parse_duration(text.trim())
            .map(Span)
            .map_err(|reason| UnitError::NotADuration { text: text.to_string(), reason })
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_binary_and_decimal_units() {
        assert_eq!(ByteSize::parse("64MiB").unwrap().0, 64 << 20);
        assert_eq!(ByteSize::parse("1 GiB").unwrap().0, 1 << 30);
        assert_eq!(ByteSize::parse("10KB").unwrap().0, 10_000);
        assert_eq!(ByteSize::parse("4_096").unwrap().0, 4096);
    }

    #[test]
    fn sizes_reject_unknown_units_naming_them() {
        let err = ByteSize::parse("64mb").unwrap_err().to_string();
        assert_eq!(err, "unknown size unit `mb` in `64mb` (use B, KiB, MiB, GiB, KB, MB or GB)");
    }

    #[test]
    fn sizes_display_in_the_largest_exact_unit() {
        assert_eq!(ByteSize(128 << 20).to_string(), "128 MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000 bytes");
        assert_eq!(ByteSize(200_197).to_string(), "195.5 KiB");
    }

    #[test]
    fn durations_parse_humantime() {
        assert_eq!(Span::parse("250ms").unwrap().0, Duration::from_millis(250));
        assert!(Span::parse("soon").unwrap_err().to_string().starts_with("`soon` is not a duration"));
    }
}
