//! The file read into settings: defaults, ceilings, stores, errors naming keys.

use super::*;
use std::time::Duration;

fn parse(text: &str) -> Result<Settings, ConfigError> {
    Settings::parse(text, Path::new("conf/paddock.toml"))
}

#[test]
fn embedded_defaults_are_within_their_ceiling() {
    let s = Settings::default();
    assert_eq!(s.limits.fuel, 10_000_000_000);
    assert_eq!(s.limits.memory, 128 << 20);
    assert_eq!(s.limits.timeout, Duration::from_secs(30));
    assert_eq!(s.source_name(), "<embedded defaults>");
}

#[test]
fn unknown_key_is_refused_naming_file_and_key() {
    let err = parse("[limits]\nfule = 3\n").unwrap_err();
    assert_eq!(err.file, "conf/paddock.toml");
    assert!(err.message.contains("unknown field `fule`"), "{}", err.message);
    assert!(err.message.contains("line 2"), "{}", err.message);
}

#[test]
fn default_above_ceiling_is_refused_naming_both_keys() {
    let err = parse("[limits]\nmemory = \"2GiB\"\n[ceiling]\nmemory = \"1GiB\"\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "conf/paddock.toml: limits.memory (2 GiB) is above ceiling.memory (1 GiB); raise the ceiling or lower the default"
    );
}

#[test]
fn bad_size_value_names_the_value() {
    let err = parse("[limits]\nmemory = \"lots\"\n").unwrap_err();
    assert!(err.message.contains("`lots` is not a size"), "{}", err.message);
}

#[test]
fn paths_resolve_against_the_config_folder() {
    let s = parse("[host]\nplugins = \"agents\"\n[agents.reader]\ndirs = [{ host = \"data\", guest = \"/data\" }]\n")
        .unwrap();
    assert_eq!(s.plugins_dir, Path::new("conf/agents"));
    assert_eq!(s.agents["reader"].dirs[0].host, Path::new("conf/data"));
    assert!(!s.agents["reader"].dirs[0].write);
}

#[test]
fn relative_guest_path_is_refused() {
    let err = parse("[agents.reader]\ndirs = [{ host = \"data\", guest = \"data\" }]\n").unwrap_err();
    assert_eq!(err.message, "agents.reader.dirs[0].guest must be an absolute path like \"/data\", not `data`");
}

#[test]
fn a_zero_ceiling_is_refused_naming_the_ceiling_not_the_default_under_it() {
    // Found by fuzzing: `[ceiling] memory = "0"` was refused as `limits.memory`, a key the file did not have.
    for (text, message) in [
        ("[ceiling]\nmemory = \"0\"\n", "ceiling.memory must be greater than zero"),
        ("[ceiling]\nfuel = 0\n", "ceiling.fuel must be greater than zero"),
        ("[ceiling]\ntimeout = \"0s\"\n[limits]\ntimeout = \"1s\"\n", "ceiling.timeout must be greater than zero"),
    ] {
        assert_eq!(parse(text).unwrap_err().message, message, "{text}");
    }
}

#[test]
fn manifest_requests_are_cut_to_the_ceiling_with_a_note() {
    let s = Settings::default();
    let req = Requested { fuel: Some(u64::MAX), memory: Some(1 << 20), timeout: None };
    let (limits, notes) = s.limits.with_request(&s.ceiling, &req);
    assert_eq!((limits.fuel, limits.memory, limits.timeout), (s.ceiling.fuel, 1 << 20, s.limits.timeout));
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].starts_with("limits.fuel (18446744073709551615) is above the operator's ceiling.fuel"),
        "{}",
        notes[0]
    );
}

#[test]
fn command_line_over_the_ceiling_is_an_error() {
    let s = Settings::default();
    let req = Requested { memory: Some(2 << 30), ..Default::default() };
    assert_eq!(
        s.limits.with_overrides(&s.ceiling, &req).unwrap_err().to_string(),
        "--memory 2 GiB is above ceiling.memory (1 GiB)"
    );
}

#[test]
fn blackboard_store_is_memory_unless_durable_is_asked_for() {
    assert_eq!(Settings::default().board_store, BoardStore::Memory);
    let s = parse("[blackboard]\nstore = \"durable\"\n").unwrap();
    assert_eq!(s.board_store, BoardStore::Durable(PathBuf::from("conf/.paddock/blackboard.sqlite")));
    let err = parse("[blackboard]\nstore = \"redis\"\n").unwrap_err();
    assert_eq!(err.message, "blackboard.store: `redis` is not a store; use \"memory\", \"durable\" or \"postgres\"");
}

#[test]
fn a_postgres_backend_puts_the_board_in_its_database_and_each_mistake_names_its_key() {
    let s = parse("[store]\nbackend = \"postgres\"\nurl = \"postgres://app:pw@db:5432/paddock\"\npool = 4\n").unwrap();
    let pg = s.postgres.clone().unwrap();
    assert_eq!((pg.url.as_str(), pg.pool), ("postgres://app:pw@db:5432/paddock", 4));
    assert_eq!(s.board_store, BoardStore::Postgres(pg.clone()));
    assert_eq!(s.ledger, paddock_quota::LedgerStore::Postgres(pg.clone()), "budgets hold across hosts");
    assert_eq!(s.flows, crate::FlowsStore::Postgres(pg.clone()), "every host sees every run");
    assert!(!format!("{pg:?}").contains("pw"), "the password is never printed: {pg:?}");
    let memory =
        parse("[store]\nbackend = \"postgres\"\nurl = \"postgres://db/p\"\n[blackboard]\nstore = \"memory\"\n");
    assert_eq!(memory.unwrap().board_store, BoardStore::Memory);
    let err = |text: &str| parse(text).unwrap_err().message;
    assert_eq!(
        err("[store]\nbackend = \"postgres\"\nurl-env = \"PADDOCK_TEST_NO_SUCH_VARIABLE\"\n"),
        "store.url: backend \"postgres\" needs a database: set store.url, or the environment variable \
         PADDOCK_TEST_NO_SUCH_VARIABLE (store.url-env)"
    );
    assert_eq!(
        err("[store]\nbackend = \"postgres\"\nurl = \"postgres://db/p\"\nca-file = \"certs/none.pem\"\n"),
        "store.ca-file: conf/certs/none.pem is not a file"
    );
    assert_eq!(
        err("[store]\nca-file = \"certs/db.pem\"\n"),
        "store.ca-file: set, but store.backend is \"embedded\"; set backend = \"postgres\""
    );
    assert_eq!(
        err("[store]\nbackend = \"postgres\"\nurl = \"postgres://db:port/p\"\n"),
        "store.url: not a PostgreSQL connection string (invalid value for option `port`)"
    );
    assert_eq!(
        err("[store]\nbackend = \"postgres\"\nurl = \"postgres://db/p\"\npool = 0\n"),
        "store.pool: 0 connections; use 1 to 1000"
    );
    assert_eq!(
        err("[store]\nbackend = \"mysql\"\n"),
        "store.backend: `mysql` is not a backend; use \"embedded\" or \"postgres\""
    );
    assert_eq!(
        err("[store]\nurl = \"postgres://db/p\"\n"),
        "store.url: set, but store.backend is \"embedded\"; set backend = \"postgres\""
    );
    assert!(
        err("[store]\nbackend = \"postgres\"\nurl = \"postgres://db/p\"\n[host]\nledger = \"durable\"\n")
            .starts_with("host.ledger: \"durable\" is a file of this host's, and [store] backend is \"postgres\"")
    );
    assert!(
        err("[store]\nbackend = \"postgres\"\nurl = \"postgres://db/p\"\n[host]\nflows = \"durable\"\n")
            .starts_with("host.flows: \"durable\" is a file of this host's, and [store] backend is \"postgres\"")
    );
    assert_eq!(
        err("[blackboard]\nstore = \"postgres\"\n"),
        "blackboard.store: \"postgres\" needs a database: set [store] backend = \"postgres\""
    );
    assert!(
        err("[store]\nbackend = \"postgres\"\nurl = \"postgres://db/p\"\n[blackboard]\nstore = \"durable\"\n")
            .starts_with(
                "blackboard.store: \"durable\" is a file of this machine, and [store] backend is \"postgres\""
            )
    );
}

#[test]
fn nothing_configured_means_the_simulated_routes_fast_and_smart() {
    let s = Settings::default();
    assert!(s.gateway.simulated_defaults);
    assert_eq!(s.gateway.routes.keys().collect::<Vec<_>>(), ["fast", "smart"]);
}

#[test]
fn provider_and_route_errors_name_the_key() {
    let cases = [
        (
            "[providers.x]\nkind = \"bedrock\"\n",
            "providers.x.kind: `bedrock` is not a provider kind; use openai, anthropic, gemini, ollama or simulated",
        ),
        (
            "[providers.x]\nkind = \"openai\"\napi-key-env = \"PADDOCK_TEST_UNSET_KEY\"\n",
            "providers.x.api-key-env: the environment variable PADDOCK_TEST_UNSET_KEY is not set",
        ),
        (
            "[providers.x]\nkind = \"openai\"\napi-key-secret = \"k\"\n",
            "providers.x.api-key-secret: no secrets file is configured (host.secrets)",
        ),
        (
            "[providers.x]\nkind = \"openai\"\nbase-url = \"api.openai.com\"\n",
            "providers.x.base-url: `api.openai.com` is not an http:// or https:// URL",
        ),
        (
            "[routes.fast]\ntargets = [{ provider = \"nope\", model = \"m\" }]\n",
            "routes.fast.targets[0].provider: no provider named \"nope\" (configured: simulated)",
        ),
        (
            "[routes.fast]\nstrategy = \"cheapest\"\ntargets = [{ provider = \"simulated\", model = \"m\" }]\n",
            "routes.fast.targets[0]: strategy \"cheapest\" needs a price for simulated/m in [prices]",
        ),
        ("[routes.fast]\ntargets = []\n", "routes.fast.targets: a route needs at least one target"),
        (
            "[routes.fast]\nthrottle-below = 2.0\ntargets = [{ provider = \"simulated\", model = \"m\" }]\n",
            "routes.fast.throttle-below: 2 is not a fraction between 0 and 1",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(parse(text).unwrap_err().message, message, "{text}");
    }
}

#[test]
fn route_and_target_thresholds_layer_over_the_defaults() {
    let s = parse(
        "[routes.r]\nretries = 3\nbreaker = { failures = 5 }\ntargets = [\n  { provider = \"simulated\", model = \"a\" },\n  { provider = \"simulated\", model = \"b\", retries = 0, breaker = { open-for = \"5s\" } },\n]\n",
    )
    .unwrap();
    let r = &s.gateway.routes["r"];
    assert_eq!((r.targets[0].policy.retries, r.targets[0].policy.breaker.failures), (3, 5));
    assert_eq!((r.targets[1].policy.retries, r.targets[1].policy.breaker.open_for), (0, Duration::from_secs(5)));
    assert_eq!(r.targets[1].policy.breaker.failures, 5, "breaker keys layer one by one");
    assert!(!s.gateway.simulated_defaults);
}

#[test]
fn a_secrets_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.toml");
    std::fs::write(&secrets, "k = \"sk-1\"\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = "[host]\nsecrets = \"secrets.toml\"\n[providers.x]\nkind = \"openai\"\napi-key-secret = \"k\"\n";
        let err = Settings::parse(text, &dir.path().join("paddock.toml")).unwrap_err();
        assert!(err.message.contains("can be read by other users (mode 644); run `chmod 600"), "{}", err.message);
        assert!(!err.message.contains("sk-1"));
    }
}

#[test]
fn dir_grant_parses_host_and_guest() {
    let g = DirGrant::parse("./in::/input", false).unwrap();
    assert_eq!(g.host, Path::new("./in"));
    assert_eq!(g.guest, "/input");
    assert_eq!(DirGrant::parse("./in", true).unwrap().guest, "/data");
}

#[test]
fn retention_and_flow_store_bounds_have_defaults_and_refuse_what_would_lose_work() {
    let s = Settings::default();
    assert_eq!(s.retention, Retention::default());
    assert_eq!((s.retention.runs, s.retention.runs_per_tenant), (Duration::from_secs(7 * 86_400), 10_000));
    assert_eq!(s.flow_limits, FlowLimits { run_bytes: 64 << 20, tenant_bytes: 1 << 30, question_bytes: 64 << 10 });
    let s = parse("[retention]\nruns = \"2h\"\nruns-per-tenant = 5\ninterval = \"0s\"\n").unwrap();
    assert_eq!((s.retention.runs, s.retention.runs_per_tenant), (Duration::from_secs(7200), 5));
    assert_eq!(s.retention.interval, Duration::ZERO);
    for (text, message) in [
        ("[retention]\nruns = \"10s\"\n", "retention.runs must be at least 1m, not 10s"),
        ("[retention]\nusage = \"1h\"\n", "retention.usage must be at least 1day (usage is kept per day), not 1h"),
        ("[retention]\nruns-per-tenant = 0\n", "retention.runs-per-tenant must be at least 1"),
        ("[limits]\nmax-flow-bytes = \"0B\"\n", "limits.max-flow-bytes must be greater than zero"),
        (
            "[limits]\nmax-run-bytes = \"2GiB\"\n",
            "limits.max-run-bytes (2 GiB) is above limits.max-flow-bytes (1 GiB): a tenant could not keep one such run",
        ),
    ] {
        assert_eq!(parse(text).unwrap_err().message, message, "{text}");
    }
}

#[test]
fn keep_resident_defaults_to_one_mib_and_is_refused_over_its_cap() {
    assert_eq!(Settings::default().engine.keep_resident, 1 << 20);
    assert_eq!(parse("[engine]\nkeep-resident = \"0\"\n").unwrap().engine.keep_resident, 0);
    let err = parse("[engine]\nkeep-resident = \"65MiB\"\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "conf/paddock.toml: engine.keep-resident (65 MiB) must be at most 64 MiB (it is kept in every pool slot used at the busiest moment)"
    );
}

#[test]
fn a_memory_reservation_below_the_memory_ceiling_is_refused_naming_both() {
    assert_eq!(
        parse("[engine]\nmemory-reservation = \"256MiB\"\n[ceiling]\nmemory = \"64MiB\"\n")
            .unwrap()
            .engine
            .memory_reservation,
        Some(256 << 20)
    );
    let err = parse("[engine]\nmemory-reservation = \"64MiB\"\n[ceiling]\nmemory = \"128MiB\"\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "conf/paddock.toml: engine.memory-reservation (64 MiB) is below ceiling.memory (128 MiB): no memory could grow past it; raise it or lower the ceiling"
    );
}

#[test]
fn the_compiler_is_tiered_unless_one_is_asked_for_and_nothing_else_is_taken() {
    use crate::Compiler;
    assert_eq!(Settings::default().engine.compiler, Compiler::Tiered);
    assert_eq!(parse("[engine]\ncompiler = \"tiered\"\n").unwrap().engine.compiler, Compiler::Tiered);
    assert_eq!(parse("[engine]\ncompiler = \"winch\"\n").unwrap().engine.compiler, Compiler::Winch);
    assert_eq!(parse("[engine]\ncompiler = \"cranelift\"\n").unwrap().engine.compiler, Compiler::Cranelift);
    let err = parse("[engine]\ncompiler = \"llvm\"\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "conf/paddock.toml: engine.compiler (\"llvm\") must be \"tiered\", \"cranelift\" or \"winch\""
    );
}
