//! The bearer secret: `pdk_<id>_<secret>`. The id (16 hex digits) names the
//! key in lists, logs and revocations; the secret (32 random bytes, 64 hex
//! digits) is shown once and stored only as its BLAKE3 hash. 256 random bits
//! need no slow password hash: no one guesses them, so a fast hash is as safe
//! and keeps authentication at a microsecond.

use crate::KeyError;

/// What every token starts with, so a leaked one is easy to find in a scan.
pub const PREFIX: &str = "pdk_";

const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A token split into the id it names and the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// The key's id.
    pub id: String,
    /// BLAKE3 of the secret part (compared in constant time).
    pub hash: blake3::Hash,
}

/// A new token: its id, the whole text to hand the user, and the hash to store.
pub fn mint() -> Result<(String, String, blake3::Hash), KeyError> {
    let mut id = [0u8; ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut id).map_err(|e| KeyError::Random(e.to_string()))?;
    getrandom::fill(&mut secret).map_err(|e| KeyError::Random(e.to_string()))?;
    let (id, secret) = (hex(&id), hex(&secret));
    let hash = blake3::hash(secret.as_bytes());
    Ok((id.clone(), format!("{PREFIX}{id}_{secret}"), hash))
}

/// The id and secret hash of `token`, or `None` when it is not shaped like one
/// of ours.
pub fn parse(token: &str) -> Option<Presented> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex_of = |s: &str, bytes: usize| s.len() == 2 * bytes && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex_of(id, ID_BYTES) || !hex_of(secret, SECRET_BYTES) {
        return None;
    }
    Some(Presented { id: id.to_ascii_lowercase(), hash: blake3::hash(secret.to_ascii_lowercase().as_bytes()) })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
