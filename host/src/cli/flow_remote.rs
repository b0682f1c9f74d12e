//! `paddock flow run FILE` and `flow resume RUN` while a host serves the data
//! folder: the host runs it (`POST /v1/flows/run`, `POST /v1/runs/{id}/resume`),
//! since it runs its runs' agents with its budgets, breakers and live
//! events — and the command shows the
//! run's events as they stream back (`GET /v1/runs/{id}/events`), then its
//! end, as a run in this process would.

use super::host_api::HostApi;
use super::{EXIT_CONFIG, EXIT_CRASH, EXIT_DENIED, EXIT_LOAD, EXIT_USAGE, fail};
use crate::flow::{Event, Report, RunStatus};
use reqwest::{Method, Url};
use serde_json::{Value, json};

/// What the command asks the host to run.
pub struct Remote<'a> {
    /// The spec's text.
    pub spec: &'a str,
    /// Its file, for messages.
    pub origin: &'a str,
    /// The input.
    pub input: Value,
    /// `--tenant`.
    pub tenant: Option<String>,
    /// `--run-id`.
    pub run: Option<String>,
}

/// Runs the flow on `host`, printing its events through `show`: the run's
/// report, or the exit code of a refusal.
pub async fn run(host: &HostApi, remote: Remote<'_>, show: &crate::flow::events::Sink) -> Result<Report, u8> {
    let body = json!({
        "spec": remote.spec, "origin": remote.origin, "input": remote.input, "run": remote.run, "tenant": remote.tenant,
    });
    let id = begin(host, url(host, &["v1", "flows", "run"], &[])?, body.to_string()).await?;
    follow(host, &id, show).await
}

/// Resumes run `id` on `host` (`flow resume`), then follows it as [`run`] does.
pub async fn resume(host: &HostApi, id: &str, repin: bool, show: &crate::flow::events::Sink) -> Result<Report, u8> {
    let resume = url(host, &["v1", "runs", id, "resume"], &[("repin", Some(repin.to_string()))])?;
    let id = begin(host, resume, String::new()).await?;
    follow(host, &id, show).await
}

fn url(host: &HostApi, segments: &[&str], query: &[(&str, Option<String>)]) -> Result<Url, u8> {
    host.url(segments, query).map_err(|e| fail(EXIT_CRASH, e))
}

/// POSTs `body` to `url`, which starts a run: its id, or the exit code of the refusal.
async fn begin(host: &HostApi, url: Url, body: String) -> Result<String, u8> {
    let answer = host.call(Method::POST, url, Some(body.into_bytes())).await.map_err(|e| fail(EXIT_CRASH, e))?;
    if !answer.status.is_success() {
        let code = match answer.status.as_u16() {
            422 => EXIT_CONFIG,
            403 => EXIT_DENIED,
            // Not serving an agent, or a run that cannot be resumed.
            503 | 409 | 404 => EXIT_LOAD,
            _ => EXIT_USAGE,
        };
        return Err(fail(code, answer.message()));
    }
    Ok(answer.body["run"].as_str().unwrap_or_default().to_string())
}

/// Prints run `id`'s events through `show` as they stream, then reads how it ended.
async fn follow(host: &HostApi, id: &str, show: &crate::flow::events::Sink) -> Result<Report, u8> {
    let mut events =
        host.events(url(host, &["v1", "runs", id, "events"], &[])?).await.map_err(|a| fail(EXIT_CRASH, a.message()))?;
    while let Some(event) = events.next().await.map_err(|e| fail(EXIT_CRASH, e))? {
        if let Ok(event) = serde_json::from_str::<Event>(&event.data) {
            show(event);
        }
    }
    let ended = host.call(Method::GET, url(host, &["v1", "runs", id], &[])?, None).await;
    Ok(report(id, &ended.map_err(|e| fail(EXIT_CRASH, e))?.body))
}

/// The report of a run as `GET /v1/runs/{id}` shows it.
fn report(id: &str, record: &Value) -> Report {
    let status = match record["status"].as_str() {
        Some("succeeded") => RunStatus::Succeeded,
        Some("cancelled") => RunStatus::Cancelled,
        Some("running") => RunStatus::Running,
        _ => RunStatus::Failed,
    };
    Report {
        run: id.to_string(),
        status,
        output: Some(record["output"].clone()).filter(|o| !o.is_null()),
        error: record["error"].as_str().map(String::from),
    }
}
