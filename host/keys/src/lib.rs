//! API keys: who a caller is. A key belongs to one tenant and has one
//! [`Role`]; the tenant a request acts for comes from its key, never from
//! anything the caller claims.
//!
//! The [`Keyring`] answers "who is this bearer token?" from a snapshot in
//! memory (a hash-map lookup and one BLAKE3 of 64 bytes), and
//! [`Keyring::refresh`] re-reads the [`KeyStore`] when its generation moved,
//! which a serving host does every quarter second so a key revoked by another
//! process stops working within a second.
//!
//! ```
//! use paddock_keys::{Keyring, MemoryKeys, NewKey, Role};
//! use paddock_core::clock::SystemClock;
//! use std::sync::Arc;
//!
//! let ring = Keyring::open(Arc::new(MemoryKeys::default()), Arc::new(SystemClock)).unwrap();
//! let made = ring.create(NewKey { tenant: "acme".into(), role: Role::Run, name: None, expires_in: None }).unwrap();
//! let caller = ring.authenticate(&made.token).unwrap();
//! assert_eq!((&*caller.tenant, caller.role), ("acme", Role::Run));
//! assert!(!caller.role.allows(Role::Operate));
//! ```

mod postgres;
mod secret;
mod store;

pub use postgres::PostgresKeys;
pub use secret::PREFIX;
pub use store::{KeyStore, MemoryKeys, SqliteKeys};

use arc_swap::ArcSwap;
use paddock_core::clock::Clock;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// The most keys one tenant may hold that are neither revoked nor expired.
pub const MAX_KEYS_PER_TENANT: usize = 1000;

/// What a key may do. Each role may do everything the roles before it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Invoke agents, start and read its tenant's flow runs.
    Run,
    /// Also answer its tenant's approvals, manage its dead letters, read and
    /// write its blackboard and usage.
    Operate,
    /// Everything, for every tenant: plugins, reloads, metrics, keys.
    Admin,
}

impl Role {
    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }

    /// Its name: `run`, `operate` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Run => "run",
            Role::Operate => "operate",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = KeyError;
    fn from_str(text: &str) -> Result<Self, KeyError> {
        match text {
            "run" => Ok(Role::Run),
            "operate" => Ok(Role::Operate),
            "admin" => Ok(Role::Admin),
            other => Err(KeyError::Role(other.to_string())),
        }
    }
}

/// A key as stored: everything but its secret, which is kept only as a hash.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KeyRecord {
    /// The id, the part of the token between `pdk_` and the secret.
    pub id: String,
    /// The tenant it acts for.
    pub tenant: String,
    /// What it may do.
    pub role: Role,
    /// A label for people (`ci`, `alice`).
    pub name: Option<String>,
    /// When it was made, in ms since the Unix epoch.
    pub created_ms: u64,
    /// When it stops working, if ever.
    pub expires_ms: Option<u64>,
    /// When it was revoked, if it was.
    pub revoked_ms: Option<u64>,
    /// BLAKE3 of the secret.
    #[serde(skip)]
    pub hash: [u8; 32],
}

impl KeyRecord {
    /// Whether it works at `now_ms`.
    pub fn usable(&self, now_ms: u64) -> bool {
        self.revoked_ms.is_none() && self.expires_ms.is_none_or(|t| now_ms < t)
    }
}

/// What a new key is for.
#[derive(Clone, Debug)]
pub struct NewKey {
    /// Its tenant.
    pub tenant: String,
    /// Its role.
    pub role: Role,
    /// A label for people.
    pub name: Option<String>,
    /// How long it works, if not for ever.
    pub expires_in: Option<Duration>,
}

/// A key just made: the only time its token exists outside the caller's hands.
#[derive(Clone, Debug)]
pub struct Created {
    /// What was stored.
    pub record: KeyRecord,
    /// The bearer token, `pdk_<id>_<secret>`.
    pub token: String,
}

/// Who a request comes from, as its key says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The tenant it acts for.
    pub tenant: Arc<str>,
    /// What it may do.
    pub role: Role,
    /// The key's id (for logs); empty for an unauthenticated development host.
    pub key: Arc<str>,
}

/// Why a key cannot be made, listed or revoked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The role is not one of the three.
    #[error("unknown role {0:?}: use run, operate or admin")]
    Role(String),
    /// The tenant name breaks the rule.
    #[error(transparent)]
    Tenant(#[from] paddock_core::names::NameError),
    /// The label is not short plain text.
    #[error("key name {0:?} must be 1 to 64 of A-Z, a-z, 0-9, '.', '-' and '_'")]
    Name(String),
    /// The tenant holds as many working keys as it may.
    #[error(
        "tenant {tenant} holds {MAX_KEYS_PER_TENANT} working keys already (the most one tenant may); revoke one first"
    )]
    TooMany {
        /// The tenant.
        tenant: String,
    },
    /// No key has that id.
    #[error("no key {0:?} (or it is revoked already)")]
    NoSuchKey(String),
    /// The operating system gave no randomness.
    #[error("cannot draw random bytes for a key: {0}")]
    Random(String),
    /// The store failed.
    #[error("key store: {0}")]
    Store(String),
}

/// Why a bearer token was refused. Each is a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not shaped like `pdk_<16 hex>_<64 hex>`.
    #[error("the bearer token is not a Paddock API key (pdk_...)")]
    Malformed,
    /// No key has this id and secret.
    #[error("unknown API key")]
    Unknown,
    /// The key was revoked.
    #[error("API key {0} is revoked")]
    Revoked(String),
    /// The key's time ran out.
    #[error("API key {0} has expired")]
    Expired(String),
}

struct Snapshot {
    generation: u64,
    by_id: HashMap<String, KeyRecord>,
}

/// The keys a host checks requests against: a snapshot of a [`KeyStore`],
/// and the keys of this process alone ([`Keyring::ephemeral`]).
pub struct Keyring {
    store: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
    snapshot: ArcSwap<Snapshot>,
    ephemeral: parking_lot::Mutex<Vec<KeyRecord>>,
}

impl Keyring {
    /// A keyring over `store`, read once now.
    pub fn open(store: Arc<dyn KeyStore>, clock: Arc<dyn Clock>) -> Result<Self, KeyError> {
        let empty = Snapshot { generation: u64::MAX, by_id: HashMap::new() };
        let ring = Keyring { store, clock, snapshot: ArcSwap::from_pointee(empty), ephemeral: Default::default() };
        ring.refresh()?;
        Ok(ring)
    }

    /// Re-reads the store if a key was added or revoked since the last read;
    /// true when it did.
    pub fn refresh(&self) -> Result<bool, KeyError> {
        let generation = self.store.generation()?;
        if generation == self.snapshot.load().generation {
            return Ok(false);
        }
        self.reread(generation)?;
        Ok(true)
    }

    fn reread(&self, generation: u64) -> Result<(), KeyError> {
        let stored = self.store.all()?.into_iter();
        let by_id = stored.chain(self.ephemeral.lock().iter().cloned()).map(|k| (k.id.clone(), k)).collect();
        self.snapshot.store(Arc::new(Snapshot { generation, by_id }));
        Ok(())
    }

    /// A key that lives only in this keyring, never in the store: a serving
    /// host makes one for the CLI on the same machine and writes it where only
    /// the owner of the data folder can read it.
    pub fn ephemeral(&self, tenant: &str, role: Role, name: &str) -> Result<String, KeyError> {
        let (id, token, hash) = secret::mint()?;
        let record = KeyRecord {
            id,
            tenant: tenant.to_string(),
            role,
            name: Some(name.to_string()),
            created_ms: self.now_ms(),
            expires_ms: None,
            revoked_ms: None,
            hash: *hash.as_bytes(),
        };
        self.ephemeral.lock().push(record);
        self.reread(self.store.generation()?)?;
        Ok(token)
    }

    /// Who `token` is.
    pub fn authenticate(&self, token: &str) -> Result<Caller, AuthError> {
        let presented = secret::parse(token).ok_or(AuthError::Malformed)?;
        let snapshot = self.snapshot.load();
        let key = snapshot.by_id.get(&presented.id).ok_or(AuthError::Unknown)?;
        // blake3::Hash compares in constant time.
        if blake3::Hash::from_bytes(key.hash) != presented.hash {
            return Err(AuthError::Unknown);
        }
        if key.revoked_ms.is_some() {
            return Err(AuthError::Revoked(key.id.clone()));
        }
        if !key.usable(self.now_ms()) {
            return Err(AuthError::Expired(key.id.clone()));
        }
        Ok(Caller { tenant: key.tenant.as_str().into(), role: key.role, key: key.id.as_str().into() })
    }

    /// Makes a key and stores it.
    pub fn create(&self, new: NewKey) -> Result<Created, KeyError> {
        paddock_core::names::validate_tenant(&new.tenant)?;
        if let Some(name) = &new.name {
            let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
            if name.is_empty() || name.len() > 64 || !name.chars().all(plain) {
                return Err(KeyError::Name(name.clone()));
            }
        }
        let now = self.now_ms();
        let working = self.store.all()?.iter().filter(|k| k.tenant == new.tenant && k.usable(now)).count();
        if working >= MAX_KEYS_PER_TENANT {
            return Err(KeyError::TooMany { tenant: new.tenant });
        }
        let (id, token, hash) = secret::mint()?;
        let record = KeyRecord {
            id,
            tenant: new.tenant,
            role: new.role,
            name: new.name,
            created_ms: now,
            expires_ms: new.expires_in.map(|d| now.saturating_add(d.as_millis() as u64)),
            revoked_ms: None,
            hash: *hash.as_bytes(),
        };
        self.store.insert(&record)?;
        self.refresh()?;
        Ok(Created { record, token })
    }

    /// Revokes key `id` (its id, or its whole token).
    pub fn revoke(&self, id: &str) -> Result<KeyRecord, KeyError> {
        let id = secret::parse(id).map_or_else(|| id.to_ascii_lowercase(), |p| p.id);
        if !self.store.revoke(&id, self.now_ms())? {
            return Err(KeyError::NoSuchKey(id));
        }
        self.refresh()?;
        self.snapshot.load().by_id.get(&id).cloned().ok_or(KeyError::NoSuchKey(id))
    }

    /// Every key, revoked and expired ones too, oldest first.
    pub fn list(&self) -> Result<Vec<KeyRecord>, KeyError> {
        self.store.all()
    }

    /// How many keys work now.
    pub fn working(&self) -> usize {
        let now = self.now_ms();
        self.snapshot.load().by_id.values().filter(|k| k.usable(now)).count()
    }

    /// Wall time now, in ms since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.clock.wall().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
}

#[cfg(test)]
mod tests;
