//! The validation errors of the gateway's sections: each names its key, in the exact words users see.

use super::*;

/// The gateway's sections of a configuration file, as `paddock.toml` holds them.
#[derive(Deserialize)]
struct Sections {
    #[serde(default)]
    providers: BTreeMap<String, ProviderFile>,
    #[serde(default)]
    routes: BTreeMap<String, RouteFile>,
    #[serde(default)]
    prices: BTreeMap<String, PriceFile>,
    secrets: Option<std::path::PathBuf>,
}

/// Validates `text` with `base` as the configuration's folder, where only
/// the variable `SET_KEY` is set.
fn validate_in(text: &str, base: &Path) -> Result<GatewaySettings, SettingsError> {
    let s: Sections = toml::from_str(text).expect("the sections parse");
    let file = GatewayFile { providers: s.providers, routes: s.routes, prices: s.prices, secrets: s.secrets };
    let env = |name: &str| (name == "SET_KEY").then(|| "sk-set".to_string());
    file.validate(&KeySource { env: &env, base, required: true })
}

fn error_of(text: &str) -> String {
    validate_in(text, Path::new("/nonexistent")).expect_err(text).to_string()
}

const SIM_ROUTE: &str = "[providers.sim]\nkind = \"simulated\"\n[routes.r]\n";

#[test]
fn every_invalid_provider_key_is_named_in_its_error() {
    for (text, message) in [
        (
            "[providers.x]\nkind = \"bedrock\"\n",
            "providers.x.kind: `bedrock` is not a provider kind; use openai, anthropic, gemini, ollama or simulated",
        ),
        (
            "[providers.x]\nkind = \"openai\"\napi-key-env = \"SET_KEY\"\napi-key-secret = \"k\"\n",
            "providers.x: give api-key-env or api-key-secret, not both",
        ),
        (
            "[providers.x]\nkind = \"openai\"\napi-key-env = \"UNSET_KEY\"\n",
            "providers.x.api-key-env: the environment variable UNSET_KEY is not set",
        ),
        (
            "[providers.x]\nkind = \"openai\"\napi-key-secret = \"k\"\n",
            "providers.x.api-key-secret: no secrets file is configured (host.secrets)",
        ),
        (
            "[providers.x]\nkind = \"openai\"\nkey-header = \"x-key\"\n",
            "providers.x.key-header: `x-key` is not one of \"authorization\", \"api-key\"",
        ),
        (
            "[providers.x]\nkind = \"openai\"\nmax-tokens-field = \"tokens\"\n",
            "providers.x.max-tokens-field: `tokens` is not one of \"max_tokens\", \"max_completion_tokens\"",
        ),
        (
            "[providers.x]\nkind = \"ollama\"\nmax-tokens-field = \"max_tokens\"\n",
            "providers.x.max-tokens-field is for kind = \"openai\" only",
        ),
        (
            "[providers.x]\nkind = \"gemini\"\nbase-url = \"ftp://g\"\n",
            "providers.x.base-url: `ftp://g` is not an http:// or https:// URL",
        ),
        (
            "[providers.x]\nkind = \"simulated\"\nfailure-rate = 1.5\n",
            "providers.x.failure-rate: 1.5 is not a fraction between 0 and 1",
        ),
        (
            "[providers.x]\nkind = \"simulated\"\nfailures = [\"server-error\", \"gremlins\"]\n",
            "providers.x.failures: `gremlins` is not an error class",
        ),
        (
            "[providers.x]\nkind = \"anthropic\"\nseed = 3\n",
            "providers.x: seed, latency and failure settings are for kind = \"simulated\" only",
        ),
    ] {
        assert_eq!(error_of(text), message, "{text}");
    }
}

#[test]
fn every_invalid_route_or_price_key_is_named_in_its_error() {
    let route = |rest: &str| format!("{SIM_ROUTE}{rest}");
    let target = "targets = [{ provider = \"sim\", model = \"m\" }]\n";
    for (text, message) in [
        (
            "[prices.m]\ninput = -1.0\noutput = 1.0\n".to_string(),
            "prices.\"m\".input: -1 is not a price in US dollars per million tokens",
        ),
        (
            "[prices.m]\ninput = 1.0\noutput = nan\n".to_string(),
            "prices.\"m\".output: NaN is not a price in US dollars per million tokens",
        ),
        (
            route(&format!("strategy = \"random\"\n{target}")),
            "routes.r.strategy: `random` is not one of \"priority\", \"cheapest\", \"fastest\"",
        ),
        (route("targets = []\n"), "routes.r.targets: a route needs at least one target"),
        (route(&format!("attempt-timeout = \"0s\"\n{target}")), "routes.r.attempt-timeout must be greater than zero"),
        (
            route(&format!("throttle-below = -0.5\n{target}")),
            "routes.r.throttle-below: -0.5 is not a fraction between 0 and 1",
        ),
        (
            route(&format!("breaker = {{ failure-rate = 2.0 }}\n{target}")),
            "routes.r.breaker.failure-rate: 2 is not a fraction between 0 and 1",
        ),
        (
            route(&format!("breaker = {{ panic-min-success = 1.2 }}\n{target}")),
            "routes.r.breaker.panic-min-success: 1.2 is not a fraction between 0 and 1",
        ),
        (
            route("targets = [{ provider = \"sim\", model = \"m\" }, { provider = \"gone\", model = \"m\" }]\n"),
            "routes.r.targets[1].provider: no provider named \"gone\" (configured: sim)",
        ),
        (
            "[routes.r]\ntargets = [{ provider = \"gone\", model = \"m\" }]\n".to_string(),
            "routes.r.targets[0].provider: no provider named \"gone\" (configured: none)",
        ),
        (
            route(&format!("strategy = \"cheapest\"\n{target}")),
            "routes.r.targets[0]: strategy \"cheapest\" needs a price for sim/m in [prices]",
        ),
        (
            route("targets = [{ provider = \"sim\", model = \"m\", idle-timeout = \"0ms\" }]\n"),
            "routes.r.targets[0].idle-timeout must be greater than zero",
        ),
        (route(&format!("max-attempts = 0\n{target}")), "routes.r.max-attempts must be at least 1"),
    ] {
        assert_eq!(error_of(&text), message, "{text}");
    }
}

#[cfg(unix)]
#[test]
fn secrets_file_errors_name_host_secrets_and_the_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("secrets.toml");
    let shown = path.display();
    let uses = |secret: &str| {
        format!("secrets = \"secrets.toml\"\n[providers.x]\nkind = \"openai\"\napi-key-secret = \"{secret}\"\n")
    };
    let write = |text: &str, mode: u32| {
        std::fs::write(&path, text).expect("written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    let missing = validate_in(&uses("k"), dir.path()).expect_err("no file");
    assert!(matches!(missing, SettingsError::SecretsUnreadable { .. }) && missing.key() == "host.secrets");
    let missing = missing.to_string();
    assert!(missing.starts_with(&format!("host.secrets: cannot read {shown}: ")), "{missing}");
    write("k = \"sk-1\"\n", 0o644);
    let exposed = validate_in(&uses("k"), dir.path()).expect_err("readable by others");
    assert!(matches!(exposed, SettingsError::SecretsExposed { mode: 0o644, .. }));
    assert_eq!(
        exposed.to_string(),
        format!("host.secrets: {shown} can be read by other users (mode 644); run `chmod 600 {shown}`")
    );
    write("k = sk-1\n", 0o600);
    assert_eq!(
        validate_in(&uses("k"), dir.path()).expect_err("not TOML").to_string(),
        format!("host.secrets: {shown} is not a TOML table of name = \"key\" strings (error at byte 4)")
    );
    write("k = \"sk-1\"\n", 0o600);
    let unknown = validate_in(&uses("other"), dir.path()).expect_err("no such key");
    assert_eq!(unknown.key(), "providers.x.api-key-secret");
    assert_eq!(unknown.to_string(), "providers.x.api-key-secret: the secrets file has no key \"other\"");
    let settings = validate_in(&uses("k"), dir.path()).expect("valid");
    assert!(settings.providers["x"].key.is_some());
}

#[test]
fn an_unset_key_variable_is_told_apart_from_a_wrong_file() {
    let text = "[providers.x]\nkind = \"openai\"\napi-key-env = \"UNSET_KEY\"\n";
    let unset = validate_in(text, Path::new("/nonexistent")).expect_err("the variable is unset");
    assert!(matches!(&unset, SettingsError::UnsetVariable { variable, .. } if variable == "UNSET_KEY"));
    assert_eq!(unset.key(), "providers.x.api-key-env");
    let wrong =
        validate_in("[providers.x]\nkind = \"bedrock\"\n", Path::new("/nonexistent")).expect_err("no such kind");
    assert!(matches!(wrong, SettingsError::Invalid { .. }) && wrong.key() == "providers.x.kind");
}
