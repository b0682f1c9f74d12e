//! Sends the requests its input names, in order, through `paddock_sdk::http`:
//! `{"requests": [{"method": "GET", "url": "http://host:port/path", "body":
//! "text"}], "follow": true}`. With `follow` it sends a redirect's
//! `location` as a new GET (up to 5). Each answer is `{"status", "body",
//! "location"}` or `{"error": text}`.
use paddock_sdk::{Agent, export_agent, http};
use serde::Deserialize;
use serde_json::{Value, json};

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

fn send(method: &str, url: &str, body: Option<&str>) -> Result<http::Response, http::Error> {
    let request = http::method(method, url);
    match body {
        Some(text) => request.body(text).send(),
        None => request.send(),
    }
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
                    Ok(r) if input.follow && (300..400).contains(&r.status) && r.header("location").is_some() => {
                        let location = r.header("location").unwrap_or_default();
                        answers.push(json!({ "status": r.status, "location": location }));
                        (method, url, body) = ("GET".into(), location, None);
                        continue;
                    }
                    Ok(r) => {
                        answers.push(json!({ "status": r.status, "body": r.text(), "location": r.header("location") }))
                    }
                    Err(e) => answers.push(json!({ "error": e.to_string() })),
                }
                break;
            }
        }
        Ok(Value::Array(answers).to_string())
    }
}

export_agent!(Fetcher);
