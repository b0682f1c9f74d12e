//! `paddock flow run FILE` and `flow resume RUN` while a host serves the data
//! folder: the host runs it (`POST /v1/flows/run`, `POST /v1/runs/{id}/resume`),
//! since it holds the stores — a durable
//! blackboard is one file one process holds — and the command shows the
//! run's events as they stream back (`GET /v1/runs/{id}/events`), then its
//! end, as a run in this process would.

use super::serve::Serving;
use super::{EXIT_CONFIG, EXIT_CRASH, EXIT_DENIED, EXIT_LOAD, EXIT_USAGE, fail};
use crate::flow::{Event, Report, RunStatus};
use futures_util::StreamExt;
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
pub async fn run(host: &Serving, remote: Remote<'_>, show: &crate::flow::events::Sink) -> Result<Report, u8> {
    let body = json!({
        "spec": remote.spec, "origin": remote.origin, "input": remote.input, "run": remote.run, "tenant": remote.tenant,
    });
    let client = host.streaming_client().map_err(|e| fail(EXIT_CRASH, e))?;
    let started = host.request(&client, reqwest::Method::POST, "/v1/flows/run").json(&body);
    let id = begin(host, started).await?;
    follow(host, &client, &id, show).await
}

/// Resumes run `id` on `host` (`flow resume`), then follows it as [`run`] does.
pub async fn resume(host: &Serving, id: &str, repin: bool, show: &crate::flow::events::Sink) -> Result<Report, u8> {
    let client = host.streaming_client().map_err(|e| fail(EXIT_CRASH, e))?;
    let path = format!("/v1/runs/{id}/resume?repin={repin}");
    let id = begin(host, host.request(&client, reqwest::Method::POST, &path)).await?;
    follow(host, &client, &id, show).await
}

fn unreachable(host: &Serving) -> impl Fn(reqwest::Error) -> u8 + '_ {
    move |e| fail(EXIT_CRASH, format!("the host at {} did not answer: {e}", host.address))
}

/// Sends `request`, which starts a run: its id, or the exit code of the refusal.
async fn begin(host: &Serving, request: reqwest::RequestBuilder) -> Result<String, u8> {
    let response = request.send().await.map_err(unreachable(host))?;
    let status = response.status().as_u16();
    let answer: Value = response.json().await.map_err(unreachable(host))?;
    if status != 200 && status != 202 {
        let message = answer["error"]["message"].as_str().map_or_else(|| answer.to_string(), String::from);
        let code = match status {
            422 => EXIT_CONFIG,
            403 => EXIT_DENIED,
            // Not serving an agent, or a run that cannot be resumed.
            503 | 409 | 404 => EXIT_LOAD,
            _ => EXIT_USAGE,
        };
        return Err(fail(code, message));
    }
    Ok(answer["run"].as_str().unwrap_or_default().to_string())
}

/// Prints run `id`'s events through `show` as they stream, then reads how it ended.
async fn follow(
    host: &Serving,
    client: &reqwest::Client,
    id: &str,
    show: &crate::flow::events::Sink,
) -> Result<Report, u8> {
    let events = host.request(client, reqwest::Method::GET, &format!("/v1/runs/{id}/events"));
    let mut stream = events.send().await.map_err(unreachable(host))?.bytes_stream();
    let mut pending = String::new();
    while let Some(chunk) = stream.next().await {
        pending.push_str(&String::from_utf8_lossy(&chunk.map_err(unreachable(host))?));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            if let Some(data) = line.trim_end().strip_prefix("data:")
                && let Ok(event) = serde_json::from_str::<Event>(data.trim_start())
            {
                show(event);
            }
        }
    }
    let ended = host.request(client, reqwest::Method::GET, &format!("/v1/runs/{id}"));
    let record: Value = ended.send().await.map_err(unreachable(host))?.json().await.map_err(unreachable(host))?;
    Ok(report(id, &record))
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
