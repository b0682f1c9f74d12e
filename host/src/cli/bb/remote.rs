//! `paddock bb` through the host serving the data folder: the same commands
//! and the same output, over its blackboard API.

use super::{BbCommand, print_change_json, print_deleted, print_entry, print_keys, print_written};
use crate::cli::host_api::{Answer, HostApi};
use crate::cli::{EXIT_AGENT_ERROR, EXIT_CRASH, EXIT_USAGE, fail};
use crate::config::Span;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;

/// Runs `command` on the host's board of `tenant`.
pub(super) async fn bb(host: &HostApi, tenant: String, command: BbCommand) -> u8 {
    let board = Board { host, tenant };
    let result = match command {
        BbCommand::Get { key, common } => board.get(&key, common.json).await,
        BbCommand::Put { lines: true, ttl, common, .. } => board.put_lines(ttl, common.json).await,
        BbCommand::Put { key, value, expect, ttl, common, .. } => {
            let (key, value) = (key.unwrap_or_default(), value.unwrap_or_default());
            board.put(&key, value.as_bytes(), expect, ttl, common.json).await
        }
        BbCommand::Delete { key, common } => board.delete(&key, common.json).await,
        BbCommand::List { prefix, limit, common } => board.list(&prefix, limit, common.json).await,
        BbCommand::History { prefix, after, common } => board.history(&prefix, after, common.json).await,
        BbCommand::Watch { prefix, after, count, timeout, common } => {
            board.watch(&prefix, after, count, timeout.map(|s| s.0), common.json).await
        }
    };
    result.unwrap_or_else(|(code, message)| fail(code, message))
}

/// A failure: the exit code and the message.
type Failed = (u8, String);

struct Board<'a> {
    host: &'a HostApi,
    tenant: String,
}

/// The exit code of an answer that is not a success: the host could not be
/// used (its key was refused, it failed) or the board refused the request.
fn failed(answer: &Answer) -> Failed {
    let code = match answer.status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::INTERNAL_SERVER_ERROR => EXIT_CRASH,
        _ => EXIT_AGENT_ERROR,
    };
    (code, answer.message())
}

impl Board<'_> {
    fn url(&self, segments: &[&str], query: &[(&str, Option<String>)]) -> Result<reqwest::Url, Failed> {
        let mut query = query.to_vec();
        query.push(("tenant", Some(self.tenant.clone())));
        self.host.url(segments, &query).map_err(|e| (EXIT_CRASH, e))
    }

    async fn call(&self, method: Method, url: reqwest::Url, body: Option<Vec<u8>>) -> Result<Answer, Failed> {
        self.host.call(method, url, body).await.map_err(|e| (EXIT_CRASH, e))
    }

    /// `GET url`, whose answer must be a success.
    async fn fetch(&self, url: reqwest::Url) -> Result<Value, Failed> {
        let answer = self.call(Method::GET, url, None).await?;
        if answer.status.is_success() { Ok(answer.body) } else { Err(failed(&answer)) }
    }

    async fn get(&self, key: &str, json: bool) -> Result<u8, Failed> {
        let answer = self.call(Method::GET, self.url(&["v1", "board", "keys", key], &[])?, None).await?;
        if answer.status == StatusCode::NOT_FOUND && answer.body["error"]["kind"] == "not-found" {
            eprintln!("{}", answer.message());
            return Ok(EXIT_AGENT_ERROR);
        }
        if !answer.status.is_success() {
            return Err(failed(&answer));
        }
        print_entry(&answer.body, json);
        Ok(0)
    }

    async fn put(
        &self,
        key: &str,
        value: &[u8],
        expect: Option<u64>,
        ttl: Option<Span>,
        json: bool,
    ) -> Result<u8, Failed> {
        let query = [("expect", expect.map(|e| e.to_string())), ("ttl", ttl.map(|t| format!("{}ms", t.0.as_millis())))];
        let url = self.url(&["v1", "board", "keys", key], &query)?;
        let answer = self.call(Method::PUT, url, Some(value.to_vec())).await?;
        if !answer.status.is_success() {
            return Err(failed(&answer));
        }
        print_written(key, answer.body["revision"].as_u64().unwrap_or(0), json);
        Ok(0)
    }

    async fn delete(&self, key: &str, json: bool) -> Result<u8, Failed> {
        let answer = self.call(Method::DELETE, self.url(&["v1", "board", "keys", key], &[])?, None).await?;
        if !answer.status.is_success() {
            return Err(failed(&answer));
        }
        Ok(print_deleted(key, &self.tenant, answer.body["deleted"] == true, json))
    }

    async fn put_lines(&self, ttl: Option<Span>, json: bool) -> Result<u8, Failed> {
        // Line by line, so each revision prints once stored, as lines come.
        for (n, line) in std::io::stdin().lines().enumerate() {
            let line = line.map_err(|e| (EXIT_AGENT_ERROR, format!("storage failure: reading stdin: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once(' ') else {
                eprintln!("error: line {}: expected `KEY VALUE`", n + 1);
                return Ok(EXIT_USAGE);
            };
            self.put(key, value.as_bytes(), None, ttl, json).await?;
        }
        Ok(0)
    }

    async fn list(&self, prefix: &str, limit: usize, json: bool) -> Result<u8, Failed> {
        let mut keys: Vec<String> = Vec::new();
        let mut after: Option<String> = None;
        while keys.len() < limit {
            let page = (limit - keys.len()).min(crate::blackboard::LIST_MAX);
            let query =
                [("prefix", Some(prefix.to_string())), ("after", after.clone()), ("limit", Some(page.to_string()))];
            let body = self.fetch(self.url(&["v1", "board"], &query)?).await?;
            let page: Vec<String> = serde_json::from_value(body["keys"].clone()).unwrap_or_default();
            let Some(last) = page.last().cloned() else { break };
            keys.extend(page);
            after = Some(last);
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        print_keys(&keys, json);
        Ok(0)
    }

    async fn history(&self, prefix: &str, after: u64, json: bool) -> Result<u8, Failed> {
        let query = [("prefix", Some(prefix.to_string())), ("after", Some(after.to_string()))];
        let body = self.fetch(self.url(&["v1", "board", "history"], &query)?).await?;
        for change in body.as_array().into_iter().flatten() {
            print_change_json(change, json);
        }
        Ok(0)
    }

    async fn watch(
        &self,
        prefix: &str,
        after: Option<u64>,
        count: Option<usize>,
        timeout: Option<Duration>,
        json: bool,
    ) -> Result<u8, Failed> {
        let query = [("prefix", Some(prefix.to_string())), ("after", after.map(|a| a.to_string()))];
        let mut events =
            self.host.events(self.url(&["v1", "board", "watch"], &query)?).await.map_err(|a| failed(&a))?;
        let mut seen = 0;
        loop {
            let next = match timeout {
                Some(wait) => match tokio::time::timeout(wait, events.next()).await {
                    Ok(next) => next,
                    Err(_) => return Ok(0),
                },
                None => events.next().await,
            };
            let Some(event) = next.map_err(|e| (EXIT_CRASH, e))? else {
                return Err((EXIT_CRASH, "the host ended the watch".to_string()));
            };
            let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            if event.name != "change" {
                let message = data["error"]["message"].as_str().unwrap_or(&event.data).to_string();
                return Err((EXIT_AGENT_ERROR, message));
            }
            print_change_json(&data, json);
            seen += 1;
            if count.is_some_and(|n| seen >= n) {
                return Ok(0);
            }
        }
    }
}
