//! Sends the requests its input names, in order, through `wasi:http`:
//! `{"requests": [{"method": "GET", "url": "http://host:port/path", "body":
//! "text"}], "follow": true}`. With `follow` it sends a redirect's
//! `location` as a new GET (up to 5). Each answer is `{"status", "body",
//! "location"}` or `{"error": text}`, the text of the host's error code.
use paddock_sdk::{Agent, export_agent};
use serde::Deserialize;
use serde_json::{Value, json};
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

#[derive(Deserialize)]
struct Input {
    requests: Vec<Wanted>,
    #[serde(default)]
    follow: bool,
}

#[derive(Deserialize)]
struct Wanted {
    #[serde(default = "get")]
    method: String,
    url: String,
    #[serde(default)]
    body: Option<String>,
}

fn get() -> String {
    "GET".into()
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

fn describe(e: ErrorCode) -> String {
    match e {
        ErrorCode::InternalError(Some(text)) => text,
        other => format!("{other:?}"),
    }
}

fn send(method: &str, url: &str, body: Option<&str>) -> Result<Answer, String> {
    let (scheme, rest) = url.split_once("://").ok_or("a URL has a scheme")?;
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let method = match method {
        "POST" => Method::Post,
        "PUT" => Method::Put,
        _ => Method::Get,
    };
    request.set_method(&method).map_err(|()| "method")?;
    request.set_scheme(Some(if scheme == "https" { &Scheme::Https } else { &Scheme::Http })).map_err(|()| "scheme")?;
    request.set_authority(Some(authority)).map_err(|()| "authority")?;
    request.set_path_with_query(Some(path)).map_err(|()| "path")?;
    let outgoing = request.body().map_err(|()| "body")?;
    let pending = outgoing_handler::handle(request, None).map_err(describe)?;
    if let Some(text) = body {
        let stream = outgoing.write().map_err(|()| "body stream")?;
        for chunk in text.as_bytes().chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|e| format!("writing the body: {e:?}"))?;
        }
        drop(stream);
    }
    OutgoingBody::finish(outgoing, None).map_err(describe)?;
    pending.subscribe().block();
    let response = pending.get().ok_or("no response")?.map_err(|()| "response taken")?.map_err(describe)?;
    let location = response
        .headers()
        .entries()
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("location"))
        .map(|(_, value)| String::from_utf8_lossy(&value).into_owned());
    let incoming = response.consume().map_err(|()| "body taken")?;
    let stream = incoming.stream().map_err(|()| "body stream taken")?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend(chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => return Err(format!("reading the body: {}", e.to_debug_string())),
        }
    }
    Ok(Answer { status: response.status(), location, body: String::from_utf8_lossy(&bytes).into_owned() })
}

struct Fetcher;

impl Agent for Fetcher {
    fn run(input: String) -> Result<String, String> {
        let input: Input = paddock_sdk::parse_input(&input)?;
        let mut answers = Vec::new();
        for wanted in &input.requests {
            let (mut method, mut url, mut body) = (wanted.method.clone(), wanted.url.clone(), wanted.body.clone());
            for _ in 0..=5 {
                match send(&method, &url, body.as_deref()) {
                    Ok(a) if input.follow && (300..400).contains(&a.status) && a.location.is_some() => {
                        answers.push(json!({ "status": a.status, "location": a.location }));
                        (method, url, body) = ("GET".into(), a.location.unwrap_or_default(), None);
                        continue;
                    }
                    Ok(a) => answers.push(json!({ "status": a.status, "body": a.body, "location": a.location })),
                    Err(e) => answers.push(json!({ "error": e })),
                }
                break;
            }
        }
        Ok(Value::Array(answers).to_string())
    }
}

export_agent!(Fetcher);
