//! Outbound HTTP through `wasi:http`, sent by the host, for an agent whose
//! manifest asks for hosts (`capabilities.http = ["api.example.com"]`) that
//! its tenant grants. Blocking, as the rest of the SDK is.
//!
//! ```no_run
//! use paddock_sdk::http;
//!
//! let weather = http::get("https://api.example.com/weather?city=Paris").header("accept", "application/json").send()?;
//! let report: serde_json::Value = weather.json().map_err(|e| e.to_string())?;
//! let created = http::post("https://api.example.com/notes").json(&serde_json::json!({ "text": "hi" })).send()?;
//! assert!(created.status < 300, "{}", created.text());
//! # Ok::<(), String>(())
//! ```
//!
//! A request the host refuses (a host not granted, an address that is not
//! public, a body over its cap) is an [`Error`] whose text says why,
//! starting with `denied: `. Redirects are answered as they are (3xx with a
//! `location`): following one is a new request, checked as every one is.
//! Calling any of this pulls `wasi:http` into the component, which the host
//! loads only for an agent whose manifest asks for hosts.

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

/// Why a request got no response: the host's refusal or the error code, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<Error> for String {
    fn from(e: Error) -> String {
        e.0
    }
}

impl From<ErrorCode> for Error {
    fn from(e: ErrorCode) -> Error {
        match e {
            ErrorCode::InternalError(Some(text)) => Error(text),
            other => Error(format!("{other:?}")),
        }
    }
}

fn error(what: &str) -> Error {
    Error(what.to_string())
}

/// A response, read whole.
#[derive(Clone, Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (any case), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        let value = self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v);
        value.map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body read as JSON into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// A request being built; [`send`](Request::send) sends it.
#[derive(Clone, Debug)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
}

/// A GET of `url` (`https://host[:port]/path?query`).
pub fn get(url: &str) -> Request {
    request(Method::Get, url)
}

/// A POST to `url`.
pub fn post(url: &str) -> Request {
    request(Method::Post, url)
}

/// A request of any method (`"PUT"`, `"DELETE"`...) to `url`.
pub fn method(method: &str, url: &str) -> Request {
    let method = match method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        _ => Method::Other(method.to_string()),
    };
    request(method, url)
}

fn request(method: Method, url: &str) -> Request {
    Request { method, url: url.to_string(), headers: Vec::new(), body: None }
}

impl Request {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.as_bytes().to_vec()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = Some(body.into());
        self
    }

    /// Sets the body to `value` as JSON, with its content type.
    pub fn json(self, value: &impl Serialize) -> Request {
        let body = serde_json::to_vec(value).unwrap_or_default();
        self.header("content-type", "application/json").body(body)
    }

    /// Sends it and reads the response whole.
    pub fn send(self) -> Result<Response, Error> {
        let (scheme, rest) =
            self.url.split_once("://").ok_or_else(|| error("a URL starts with http:// or https://"))?;
        let scheme = match scheme {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            other => return Err(Error(format!("`{other}` is not http or https"))),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_string()),
            Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
            None => (rest, "/".to_string()),
        };
        let headers = Fields::from_list(&self.headers).map_err(|e| Error(format!("headers: {e:?}")))?;
        let request = OutgoingRequest::new(headers);
        request.set_method(&self.method).map_err(|()| error("the method is not valid"))?;
        request.set_scheme(Some(&scheme)).map_err(|()| error("the scheme is not valid"))?;
        request.set_authority(Some(authority)).map_err(|()| error("the host is not valid"))?;
        request.set_path_with_query(Some(&path)).map_err(|()| error("the path is not valid"))?;
        let outgoing = request.body().map_err(|()| error("the body was taken"))?;
        let pending = outgoing_handler::handle(request, None)?;
        if let Some(body) = &self.body {
            let stream = outgoing.write().map_err(|()| error("the body stream was taken"))?;
            for chunk in body.chunks(4096) {
                stream.blocking_write_and_flush(chunk).map_err(|e| Error(format!("sending the body: {e:?}")))?;
            }
        }
        OutgoingBody::finish(outgoing, None)?;
        pending.subscribe().block();
        let response = pending.get().ok_or_else(|| error("no response"))?.map_err(|()| error("taken"))??;
        let headers = response.headers().entries();
        let incoming = response.consume().map_err(|()| error("the response body was taken"))?;
        let stream = incoming.stream().map_err(|()| error("the response body stream was taken"))?;
        let mut body = Vec::new();
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => body.extend(chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(Error(format!("reading the body: {}", e.to_debug_string())));
                }
            }
        }
        Ok(Response { status: response.status(), headers, body })
    }
}
