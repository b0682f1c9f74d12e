//! `paddock keys`: API keys for `paddock serve`. Each belongs to one tenant
//! and has one role; its secret is printed once, at creation, and stored only
//! as a hash in `<host.data>/keys.db` — or, with `[store] backend =
//! "postgres"`, in the database every host shares — which a serving host
//! re-reads within a second of a change.

use super::{EXIT_CONFIG, EXIT_USAGE, fail};
use crate::config::{Settings, Span};
use crate::keys::{KeyError, KeyRecord, KeyStore, Keyring, NewKey, PostgresKeys, Role, SqliteKeys};
use clap::Subcommand;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// The file in `host.data` that holds the keys.
pub const KEYS_FILE: &str = "keys.db";

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a key and print its secret (the only time it is shown)
    #[command(
        after_help = "Examples:\n  paddock keys create --tenant acme --role run --name ci --expires 90d\n  TOKEN=$(paddock keys create --tenant acme --role operate)"
    )]
    Create {
        /// The tenant the key acts for [default: host.default-tenant]
        #[arg(long)]
        tenant: Option<String>,
        /// run: invoke agents and start flows; operate: also approvals, dead letters, board, usage; admin: everything, every tenant
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// A label for people (1 to 64 of A-Z a-z 0-9 . - _)
        #[arg(long)]
        name: Option<String>,
        /// How long it works, e.g. 90d or 12h [default: until revoked]
        #[arg(long, value_name = "DURATION", value_parser = Span::parse)]
        expires: Option<Span>,
    },
    /// List keys (never their secrets)
    List {
        /// Print JSON (one array)
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its id (or its whole token); a serving host refuses it within a second
    Revoke {
        /// The key's id, as `keys list` shows it
        id: String,
    },
}

fn parse_role(text: &str) -> Result<Role, KeyError> {
    text.parse()
}

/// The keyring of the host `settings` describe: in the database every host
/// shares (`[store] backend = "postgres"`), else in its data folder.
pub fn open(settings: &Settings) -> Result<Keyring, KeyError> {
    let store: Arc<dyn KeyStore> = match &settings.postgres {
        Some(database) => Arc::new(PostgresKeys::connect(database)?),
        None => {
            std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
                KeyError::Store(format!("host.data: cannot create {}: {e}", settings.data_dir.display()))
            })?;
            Arc::new(SqliteKeys::open(&settings.data_dir.join(KEYS_FILE))?)
        }
    };
    Keyring::open(store, Arc::new(crate::core::clock::SystemClock))
}

pub fn keys(settings: Settings, command: KeysCommand) -> u8 {
    let ring = match open(&settings) {
        Ok(r) => r,
        Err(e) => return fail(EXIT_CONFIG, e),
    };
    match command {
        KeysCommand::Create { tenant, role, name, expires } => {
            let tenant = tenant.unwrap_or_else(|| settings.default_tenant.clone());
            // A key for a tenant the host would refuse is of no use to anyone.
            if let Err(denied) = settings.tenants.get(&tenant) {
                return fail(EXIT_USAGE, format!("--tenant: {denied} ({})", settings.source_name()));
            }
            let new = NewKey { tenant, role, name, expires_in: expires.map(|s| s.0) };
            match ring.create(new) {
                Ok(made) => {
                    let r = &made.record;
                    eprintln!(
                        "created key {} for tenant {}, role {}{}; its secret is shown only now:",
                        r.id,
                        r.tenant,
                        r.role,
                        r.expires_ms.map(|t| format!(", expires {}", date(t))).unwrap_or_default()
                    );
                    println!("{}", made.token);
                    0
                }
                Err(e) => fail(EXIT_USAGE, e),
            }
        }
        KeysCommand::List { json } => match ring.list() {
            Ok(list) if json => {
                println!("{}", serde_json::to_string(&list).unwrap_or_default());
                0
            }
            Ok(list) => {
                print_list(&list, ring.now_ms());
                0
            }
            Err(e) => fail(EXIT_CONFIG, e),
        },
        KeysCommand::Revoke { id } => match ring.revoke(&id) {
            Ok(r) => {
                println!("revoked key {} (tenant {}, role {})", r.id, r.tenant, r.role);
                0
            }
            Err(e @ KeyError::NoSuchKey(_)) => fail(EXIT_USAGE, e),
            Err(e) => fail(EXIT_CONFIG, e),
        },
    }
}

fn print_list(list: &[KeyRecord], now_ms: u64) {
    if list.is_empty() {
        println!("no keys; make one with `paddock keys create --tenant NAME --role run`");
        return;
    }
    println!("{:<16}  {:<20}  {:<7}  {:<12}  {:<20}  state", "id", "tenant", "role", "name", "created");
    for k in list {
        let state = match (k.revoked_ms, k.expires_ms) {
            (Some(t), _) => format!("revoked {}", date(t)),
            (None, Some(t)) if t <= now_ms => format!("expired {}", date(t)),
            (None, Some(t)) => format!("expires {}", date(t)),
            (None, None) => "works".to_string(),
        };
        let name = k.name.as_deref().unwrap_or("-");
        println!("{:<16}  {:<20}  {:<7}  {name:<12}  {:<20}  {state}", k.id, k.tenant, k.role, date(k.created_ms));
    }
}

/// `2026-12-02T20:41:07Z`.
fn date(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}
