//! Commands that act through the host serving the data folder, when one
//! does: a durable board, the ledger and the providers' live state belong to
//! that process, so the CLI asks it over HTTP (with the local admin key from
//! `serve.json`) instead of opening the stores beside it.

use super::serve::{Serving, serving};
use crate::config::Settings;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use std::time::Duration;

/// How long a request to the host may take (a provider check may take the
/// probe's 30 s cap, and more when probes queue).
const TIMEOUT: Duration = Duration::from_secs(90);

/// The API of the host serving the data folder.
pub struct HostApi {
    serving: Serving,
    client: reqwest::Client,
    streaming: reqwest::Client,
}

/// What the host answered, when it answered.
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The body as JSON (null when it is not JSON).
    pub body: Value,
}

impl Answer {
    /// The error's message, as the host wrote it.
    pub fn message(&self) -> String {
        match self.body["error"]["message"].as_str() {
            Some(m) => m.to_string(),
            None => format!("the host answered {}", self.status),
        }
    }
}

impl HostApi {
    /// The host serving `settings`' data folder, if one does.
    pub fn find(settings: &Settings) -> Option<Result<HostApi, String>> {
        let serving = serving(&settings.data_dir)?;
        let clients = serving.client_timed(Some(TIMEOUT)).and_then(|c| Ok((c, serving.client_timed(None)?)));
        Some(clients.map(|(client, streaming)| HostApi { serving, client, streaming }))
    }

    /// The URL of `segments` (each percent-encoded as one segment) with `query`.
    pub fn url(&self, segments: &[&str], query: &[(&str, Option<String>)]) -> Result<Url, String> {
        let base = format!("{}://{}/", self.serving.scheme, self.serving.address);
        let mut url = Url::parse(&base).map_err(|e| format!("serve.json: {base}: {e}"))?;
        url.path_segments_mut()
            .map_err(|()| format!("serve.json: {base} cannot hold a path"))?
            .pop_if_empty()
            .extend(segments);
        let pairs: Vec<(&str, &String)> = query.iter().filter_map(|(k, v)| Some((*k, v.as_ref()?))).collect();
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        Ok(url)
    }

    fn request(&self, client: &reqwest::Client, method: Method, url: Url) -> reqwest::RequestBuilder {
        let request = client.request(method, url);
        match &self.serving.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// `method url` with `body`, answered whole.
    pub async fn call(&self, method: Method, url: Url, body: Option<Vec<u8>>) -> Result<Answer, String> {
        let mut request = self.request(&self.client, method, url);
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| self.unreachable(e))?;
        Ok(Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::Null) })
    }

    /// `GET url` as a stream of server-sent events.
    pub async fn events(&self, url: Url) -> Result<Events, Answer> {
        let request = self.request(&self.streaming, Method::GET, url).header("accept", "text/event-stream");
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Err(Answer { status: StatusCode::BAD_GATEWAY, body: message_body(&self.unreachable(e)) }),
        };
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::Null) });
        }
        Ok(Events { response, buffer: String::new() })
    }

    fn unreachable(&self, e: reqwest::Error) -> String {
        format!(
            "the host serving this data folder (pid {}, {}://{}) did not answer: {e}",
            self.serving.pid, self.serving.scheme, self.serving.address
        )
    }
}

fn message_body(message: &str) -> Value {
    serde_json::json!({ "error": { "kind": "unreachable", "message": message } })
}

/// A stream of server-sent events.
pub struct Events {
    response: reqwest::Response,
    buffer: String,
}

/// One event: its name (`message` when none) and its data.
pub struct Event {
    /// The `event:` field.
    pub name: String,
    /// The `data:` lines, joined by newlines.
    pub data: String,
}

impl Events {
    /// The next event; `None` when the stream ends.
    pub async fn next(&mut self) -> Result<Option<Event>, String> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&block) {
                    return Ok(Some(event));
                }
                continue;
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes).replace("\r\n", "\n")),
                Ok(None) => return Ok(None),
                Err(e) => return Err(format!("the host's event stream broke: {e}")),
            }
        }
    }
}

/// An event block; `None` for one with no data (a keep-alive comment).
fn parse(block: &str) -> Option<Event> {
    let mut name = "message".to_string();
    let mut data: Option<String> = None;
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = value.to_string(),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            _ => {}
        }
    }
    Some(Event { name, data: data? })
}
