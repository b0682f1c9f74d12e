//! Re-reading `paddock.toml` while serving: `POST /v1/admin/reload` (admin),
//! SIGHUP, and `paddock reload`, which asks the host serving its data folder.
//!
//! | method and path | role | what |
//! |---|---|---|
//! | `POST /v1/admin/reload` | admin | re-read the file: 200 with what changed, or 422 naming the file, key and reason |
//!
//! A file that does not read or validate changes nothing: the settings in
//! force keep serving, and the error is logged and answered. What changes
//! and what waits for a restart: [`crate::runtime::Reconfigured`].

use super::{auth, error};
use crate::config::{ConfigError, Settings};
use crate::keys::{Caller, Role};
use crate::runtime::{Reconfigured, Runtime};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};

/// The admin routes.
pub(super) fn routes(runtime: Runtime) -> Router {
    Router::new().route("/v1/admin/reload", post(reload_route)).with_state(runtime)
}

/// Reads the file the host was started from again (or `./paddock.toml`,
/// when it started on the embedded defaults) and serves it.
pub(super) fn reload(runtime: &Runtime) -> Result<Reconfigured, ConfigError> {
    let source = runtime.settings().source.clone();
    match Settings::load(source.as_deref()) {
        Ok(settings) => Ok(runtime.reconfigure(settings)),
        Err(e) => {
            tracing::warn!(target: "paddock::reload", "reload refused, the settings in force keep serving: {e}");
            Err(e)
        }
    }
}

/// Reloads at every SIGHUP until the host stops.
pub(super) fn spawn_hangup(runtime: Runtime) -> Option<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot listen for SIGHUP, reload with POST /v1/admin/reload: {e}");
                return None;
            }
        };
        Some(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                // Both outcomes are logged by `reload` and `reconfigure`.
                let _ = reload(&runtime);
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = runtime;
        None
    }
}

async fn reload_route(State(runtime): State<Runtime>, Extension(caller): Extension<Caller>) -> Response {
    if let Err(r) = auth::require(&caller, Role::Admin, "reload the host's settings") {
        return r;
    }
    match reload(&runtime) {
        Ok(done) => axum::Json(done).into_response(),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, "config", format!("{e}; the settings in force keep serving")),
    }
}

/// `paddock reload`: asks the host serving this data folder to re-read its
/// file, and prints what changed; exit 5 when the file is refused.
pub async fn command(settings: &Settings) -> u8 {
    use super::super::host_api::HostApi;
    use super::super::{EXIT_CONFIG, EXIT_USAGE, fail};
    let Some(host) = HostApi::find(settings) else {
        return fail(
            EXIT_USAGE,
            format!(
                "no paddock serve is running on the data folder {}; settings are read when a host starts",
                settings.data_dir.display()
            ),
        );
    };
    let answer = match host {
        Ok(host) => match host.url(&["v1", "admin", "reload"], &[]) {
            Ok(url) => host.call(reqwest::Method::POST, url, None).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    if !answer.status.is_success() {
        return fail(if answer.status.as_u16() == 422 { EXIT_CONFIG } else { EXIT_USAGE }, answer.message());
    }
    let body = &answer.body;
    let (applied, restart) = (strings(&body["applied"]), strings(&body["restart_needed"]));
    let source = body["source"].as_str().unwrap_or("the embedded defaults");
    if applied.is_empty() {
        println!("reloaded {source}: nothing that applies while serving changed");
    } else {
        println!("reloaded {source}: {} now apply", applied.join(", "));
    }
    for what in ["added", "changed", "removed"] {
        let routes = strings(&body["routes"][what]);
        if !routes.is_empty() {
            println!("  routes {what}: {}", routes.join(", "));
        }
    }
    if !restart.is_empty() {
        println!("  changed but kept until a restart: {}", restart.join(", "));
    }
    0
}

/// The strings of a JSON array (none when it is not one).
fn strings(value: &serde_json::Value) -> Vec<String> {
    value.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect()).unwrap_or_default()
}
