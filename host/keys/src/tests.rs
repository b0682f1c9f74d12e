use super::*;
use paddock_core::clock::ManualClock;

fn new_key(tenant: &str, role: Role) -> NewKey {
    NewKey { tenant: tenant.into(), role, name: None, expires_in: None }
}

fn ring_on(store: Arc<dyn KeyStore>) -> (Keyring, Arc<ManualClock>) {
    let clock = ManualClock::new();
    (Keyring::open(store, clock.clone()).unwrap(), clock)
}

#[test]
fn a_token_names_its_tenant_and_role() {
    let (ring, _) = ring_on(Arc::new(MemoryKeys::default()));
    let made = ring.create(NewKey { name: Some("ci".into()), ..new_key("acme", Role::Operate) }).unwrap();
    assert!(made.token.starts_with("pdk_") && made.token.len() == 4 + 16 + 1 + 64, "{}", made.token);
    let caller = ring.authenticate(&made.token).unwrap();
    assert_eq!(caller, Caller { tenant: "acme".into(), role: Role::Operate, key: made.record.id.as_str().into() });
}

#[test]
fn a_wrong_secret_under_a_real_id_is_unknown() {
    let (ring, _) = ring_on(Arc::new(MemoryKeys::default()));
    let made = ring.create(new_key("acme", Role::Run)).unwrap();
    let forged = format!("pdk_{}_{}", made.record.id, "0".repeat(64));
    assert_eq!(ring.authenticate(&forged), Err(AuthError::Unknown));
    assert_eq!(ring.authenticate("pdk_0123456789abcdef_".to_string().as_str()), Err(AuthError::Malformed));
    assert_eq!(ring.authenticate("hunter2"), Err(AuthError::Malformed));
}

#[test]
fn only_the_hash_of_the_secret_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let (ring, _) = ring_on(Arc::new(SqliteKeys::open(&path).unwrap()));
    let made = ring.create(new_key("acme", Role::Run)).unwrap();
    let secret = made.token.rsplit('_').next().unwrap();
    drop(ring);
    let bytes = std::fs::read(&path).unwrap();
    let wal = std::fs::read(dir.path().join("keys.db-wal")).unwrap_or_default();
    let contains = |hay: &[u8]| hay.windows(secret.len()).any(|w| w == secret.as_bytes());
    assert!(!contains(&bytes) && !contains(&wal), "the secret is on disk");
}

#[test]
fn a_revoked_key_fails_in_another_process_view_after_a_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    revoked_in_one_view_fails_in_the_other(SqliteKeys::open(&path).unwrap(), SqliteKeys::open(&path).unwrap());
}

#[test]
fn a_key_made_or_revoked_through_one_host_is_seen_by_another_on_postgres() {
    let Some(pg) = paddock_postgres::testing::database("keys") else { return };
    let (serving, cli) = (PostgresKeys::open(pg.clone()).unwrap(), PostgresKeys::open(pg).unwrap());
    revoked_in_one_view_fails_in_the_other(serving, cli);
}

/// A key made through `cli`'s store works through `serving`'s after a
/// refresh, and fails there once revoked (after the next).
fn revoked_in_one_view_fails_in_the_other(serving: impl KeyStore + 'static, cli: impl KeyStore + 'static) {
    let (serving, _) = ring_on(Arc::new(serving));
    let (cli, _) = ring_on(Arc::new(cli));
    let made = cli.create(new_key("acme", Role::Run)).unwrap();
    assert_eq!(serving.authenticate(&made.token), Err(AuthError::Unknown), "not read yet");
    assert!(serving.refresh().unwrap());
    assert!(serving.authenticate(&made.token).is_ok());
    cli.revoke(&made.record.id).unwrap();
    assert!(serving.authenticate(&made.token).is_ok(), "the snapshot is not re-read until a refresh");
    assert!(serving.refresh().unwrap());
    assert!(!serving.refresh().unwrap(), "nothing changed since");
    assert_eq!(serving.authenticate(&made.token), Err(AuthError::Revoked(made.record.id.clone())));
    assert_eq!(cli.revoke(&made.record.id), Err(KeyError::NoSuchKey(made.record.id.clone())));
}

#[test]
fn a_key_expires_at_its_time_and_not_before() {
    let (ring, clock) = ring_on(Arc::new(MemoryKeys::default()));
    let made = ring
        .create(NewKey { expires_in: Some(Duration::from_secs(90 * 86_400)), ..new_key("acme", Role::Run) })
        .unwrap();
    clock.advance(Duration::from_secs(90 * 86_400 - 1));
    assert!(ring.authenticate(&made.token).is_ok());
    clock.advance(Duration::from_secs(1));
    assert_eq!(ring.authenticate(&made.token), Err(AuthError::Expired(made.record.id)));
    assert_eq!(ring.working(), 0);
}

#[test]
fn revoking_by_the_whole_token_works_too() {
    let (ring, _) = ring_on(Arc::new(MemoryKeys::default()));
    let made = ring.create(new_key("acme", Role::Admin)).unwrap();
    let revoked = ring.revoke(&made.token).unwrap();
    assert_eq!(revoked.id, made.record.id);
    assert!(revoked.revoked_ms.is_some());
}

#[test]
fn roles_are_ordered_run_operate_admin() {
    assert!(Role::Admin.allows(Role::Operate) && Role::Operate.allows(Role::Run));
    assert!(!Role::Run.allows(Role::Operate) && !Role::Operate.allows(Role::Admin));
    assert_eq!("operate".parse::<Role>(), Ok(Role::Operate));
    assert_eq!("root".parse::<Role>().unwrap_err().to_string(), "unknown role \"root\": use run, operate or admin");
}

#[test]
fn bad_tenant_and_name_are_refused_with_the_rule() {
    let (ring, _) = ring_on(Arc::new(MemoryKeys::default()));
    let err = ring.create(new_key("Acme Corp", Role::Run)).unwrap_err();
    assert_eq!(err.to_string(), "tenant name `Acme Corp` must be 1 to 64 of a-z, 0-9, '-' and '_'");
    let err = ring.create(NewKey { name: Some("a b".into()), ..new_key("acme", Role::Run) }).unwrap_err();
    assert_eq!(err, KeyError::Name("a b".into()));
    assert!(ring.list().unwrap().is_empty());
}

#[test]
fn a_tenant_holds_at_most_the_cap_of_working_keys() {
    let (ring, _) = ring_on(Arc::new(MemoryKeys::default()));
    for _ in 0..MAX_KEYS_PER_TENANT {
        ring.create(new_key("acme", Role::Run)).unwrap();
    }
    let err = ring.create(new_key("acme", Role::Run)).unwrap_err();
    assert_eq!(err, KeyError::TooMany { tenant: "acme".into() });
    assert!(ring.create(new_key("globex", Role::Run)).is_ok(), "another tenant is not held back");
    let first = ring.list().unwrap()[0].id.clone();
    ring.revoke(&first).unwrap();
    assert!(ring.create(new_key("acme", Role::Run)).is_ok(), "a revoked key frees its place");
}

#[test]
fn an_ephemeral_key_works_here_and_is_never_stored() {
    let store = Arc::new(MemoryKeys::default());
    let (ring, _) = ring_on(store.clone());
    let token = ring.ephemeral("acme", Role::Admin, "local").unwrap();
    assert_eq!(ring.authenticate(&token).unwrap().role, Role::Admin);
    assert!(store.all().unwrap().is_empty());
    ring.create(new_key("globex", Role::Run)).unwrap();
    assert!(ring.authenticate(&token).is_ok(), "a re-read keeps it");
}
