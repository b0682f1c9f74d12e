//! The latency the host adds to an LLM call, under load.
//!
//! One fake OpenAI provider on 127.0.0.1 answers every path with the same
//! canned reply. Each path is driven by C concurrent loops (a closed loop: a
//! loop sends its next call as soon as its last one returns), for C in 1, 64
//! and 512, on a tokio runtime with two workers (the machine has two cores):
//!
//! - `direct`: a pooled reqwest client POSTs the exact body the host sends and
//!   reads the whole answer. The floor: HTTP client, loopback and the fake.
//! - `gateway`: `Gateway::complete`, the host's code without wasm: admission,
//!   route order, breaker, the attempt, JSON both ways, metrics.
//! - `agent`: `Runtime::run` of the `llm-client` guest with a fresh instance
//!   per call, as in production: instantiate, guest → host `llm.complete` →
//!   gateway → fake → guest, and the output back.
//! - `agent-repeat`: one invocation making many `llm.complete` calls, its time
//!   divided by their number; this leaves instantiation out.
//! - `http-key`: `POST /v1/agents/client/run` to a `paddock serve` process (the
//!   release binary) with an API key: the deployable path, HTTP and the key
//!   check, the access log and metrics included, then as `agent`.
//! - `http-open`: the same to a second host with `serve.auth = "none"`.
//! - `openai-door`: `POST /v1/chat/completions` (model = route `r`) to the
//!   keyed host: what an OpenAI SDK pays, HTTP, the key check, the door's
//!   mapping both ways and the gateway, no sandbox.
//! - `litellm`: the same request to LiteLLM's proxy (model `r` → the fake,
//!   with a master key), when `PADDOCK_BENCH_LITELLM` names its `litellm`
//!   executable; left out otherwise.
//!
//! Each path at each concurrency runs in four stretches of a second, the
//! paths taking turns, and each stretch starts with a warm-up that is not
//! counted. A row gives throughput, p50 and p99 over the calls that ended in
//! the measured seconds, and `+p50`/`+p99`: that percentile minus `direct`'s
//! at the same concurrency — the latency the host adds. At C = 1 that is
//! what one call on an idle host pays. At 64 and 512 both cores are busy, so
//! a call mostly waits behind the others (latency ≈ C / throughput) and its
//! added latency is the host's extra work per call times the queue ahead of
//! it; `+µs/call` (1 / throughput − 1 / throughput of `direct`) shows that
//! extra machine time per call directly. For the paths through a server
//! process (`http-*`, `openai-door`, `litellm`), `server CPU µs/call` is the
//! CPU time that process used in the measured seconds over the calls in
//! them: its own cost, without the load generator's or the fake's.
//!
//! `cargo bench -p paddock --bench gateway` (add `-- --quick`, or set
//! `PADDOCK_BENCH_QUICK=1`, for a short run). It prints a markdown table and
//! writes the same figures as JSON to `target/gateway-bench.json`. For
//! profiling, `PADDOCK_BENCH_ONLY=<path>` runs only `direct` and that path,
//! and `PADDOCK_BENCH_CONCURRENCY=<C>` only that concurrency; both take a
//! comma-separated list (`PADDOCK_BENCH_ONLY=openai-door,litellm
//! PADDOCK_BENCH_CONCURRENCY=1,64` is the side-by-side of the README).
//! `PADDOCK_BENCH_SERVE_THREADS=<N>` sets the served hosts' `serve.threads`.

use paddock::config::Settings;
use paddock::gateway::Caller;
use paddock::gateway::types::{ChatRequest, Message, Role};
use paddock::runtime::{Agent, RunOptions, Runtime};
use paddock_fake_provider::FakeProvider;
use paddock_test_guests::guests;
#[path = "common/cpu.rs"]
mod cpu;
#[path = "common/litellm.rs"]
mod litellm;
#[path = "common/report.rs"]
mod report;
#[path = "gateway/rows.rs"]
mod rows;
#[path = "common/served.rs"]
mod served;

use rows::{print_table, rows, write_json};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Concurrent loops per run.
const CONCURRENCY: [usize; 3] = [1, 64, 512];
/// The route and model every path uses.
const ROUTE: &str = "r";
const MODEL: &str = "m";
const PROMPT: &str = "hi";
/// Calls per `agent-repeat` invocation.
const REPEAT: u64 = 100;
/// At most this many calls in all the `agent-repeat` invocations in flight,
/// so that an invocation ends well within a measured stretch: at C = 512 an
/// invocation makes 12 calls, and a twelfth of an instantiation still falls
/// on each.
const REPEAT_CALLS_IN_FLIGHT: u64 = 6_400;

/// How each path is driven at each concurrency.
///
/// The paths take turns, round after round, rather than each running once
/// for the whole time: on this VM the same call takes anywhere from one to
/// three times as long depending on whether the other core is asleep when a
/// wake-up arrives, and on what the neighbours do. Taking turns lays such
/// swings on every path alike, so the differences stay honest.
#[derive(Clone, Copy)]
struct Phases {
    /// Before each measured stretch: the loops start together, and their
    /// first calls queue behind each other.
    warmup: Duration,
    /// One measured stretch.
    measure: Duration,
    /// Stretches per path and concurrency.
    rounds: u32,
}

impl Phases {
    /// About 75 s for the whole bench; about 17 s when `quick`.
    fn new(quick: bool) -> Phases {
        if quick {
            Phases { warmup: Duration::from_millis(200), measure: Duration::from_millis(500), rounds: 2 }
        } else {
            Phases { warmup: Duration::from_millis(500), measure: Duration::from_secs(1), rounds: 4 }
        }
    }

    /// The measured time of one path at one concurrency.
    fn measured(&self) -> Duration {
        self.measure * self.rounds
    }
}

/// The paths to the fake that are compared (`Path` is taken by std).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    Direct,
    Gateway,
    Agent,
    AgentRepeat,
    HttpKey,
    HttpOpen,
    OpenAiDoor,
    LiteLlm,
}

impl Way {
    const ALL: [Way; 8] = [
        Way::Direct,
        Way::Gateway,
        Way::Agent,
        Way::AgentRepeat,
        Way::HttpKey,
        Way::HttpOpen,
        Way::OpenAiDoor,
        Way::LiteLlm,
    ];

    fn name(self) -> &'static str {
        match self {
            Way::Direct => "direct",
            Way::Gateway => "gateway",
            Way::Agent => "agent",
            Way::AgentRepeat => "agent-repeat",
            Way::HttpKey => "http-key",
            Way::HttpOpen => "http-open",
            Way::OpenAiDoor => "openai-door",
            Way::LiteLlm => "litellm",
        }
    }

    /// LLM calls one sample makes at `concurrency`.
    fn calls_per_sample(self, concurrency: usize) -> u64 {
        match self {
            Way::AgentRepeat => (REPEAT_CALLS_IN_FLIGHT / concurrency as u64).clamp(1, REPEAT),
            _ => 1,
        }
    }
}

/// Everything a call needs, shared by all loops.
struct Subjects {
    http: reqwest::Client,
    completions_url: String,
    body: Vec<u8>,
    runtime: Runtime,
    agent: Arc<Agent>,
    caller: Caller,
    /// The hosts behind `http-key` and `http-open`.
    keyed: served::Served,
    open: served::Served,
    /// LiteLLM's proxy, when `PADDOCK_BENCH_LITELLM` names it.
    litellm: Option<litellm::LiteLlm>,
}

impl Subjects {
    /// One sample along `way`: one LLM call, or as many as `input` asks of `agent-repeat`.
    async fn sample(&self, way: Way, input: &str) {
        match way {
            Way::Direct => self.direct().await,
            Way::Gateway => self.gateway().await,
            Way::Agent | Way::AgentRepeat => self.agent(input).await,
            Way::HttpKey => self.served(&self.keyed, input).await,
            Way::HttpOpen => self.served(&self.open, input).await,
            Way::OpenAiDoor => self.door(&self.keyed.host.url, self.keyed.token.as_deref()).await,
            Way::LiteLlm => {
                let proxy = self.litellm.as_ref().expect("the litellm path runs only with a proxy");
                self.door(&proxy.url, Some(&proxy.key)).await
            }
        }
    }

    /// The process answering `way`, when it is a server of its own.
    fn server(&self, way: Way) -> Option<u32> {
        match way {
            Way::HttpKey | Way::OpenAiDoor => Some(self.keyed.host.pid()),
            Way::HttpOpen => Some(self.open.host.pid()),
            Way::LiteLlm => self.litellm.as_ref().map(litellm::LiteLlm::pid),
            Way::Direct | Way::Gateway | Way::Agent | Way::AgentRepeat => None,
        }
    }

    /// `POST /v1/chat/completions` of route `r` to an OpenAI-compatible server at `url`.
    async fn door(&self, url: &str, key: Option<&str>) {
        let body = json!({ "model": ROUTE, "messages": [{ "role": "user", "content": PROMPT }] });
        let mut request = self.http.post(format!("{url}/v1/chat/completions")).json(&body);
        if let Some(token) = key {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the host answers");
        assert!(response.status().is_success(), "the door answered {}", response.status());
        let answer: Value = response.json().await.expect("the door answers JSON");
        assert!(answer["choices"][0]["message"]["content"].is_string(), "no completion: {answer}");
    }

    async fn served(&self, host: &served::Served, input: &str) {
        let mut request = self.http.post(format!("{}/v1/agents/client/run", host.host.url)).body(input.to_string());
        if let Some(token) = &host.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the host answers");
        assert!(response.status().is_success(), "the host answered {}", response.status());
        let body: Value = response.json().await.expect("the host answers JSON");
        assert!(body["output"]["ok"].is_object(), "the agent's call failed: {body}");
    }

    async fn direct(&self) {
        let response = self
            .http
            .post(&self.completions_url)
            .header("content-type", "application/json")
            .body(self.body.clone())
            .send()
            .await
            .expect("the fake answers");
        assert!(response.status().is_success(), "the fake answered {}", response.status());
        response.bytes().await.expect("the fake sends its whole answer");
    }

    async fn gateway(&self) {
        let req = ChatRequest {
            route: ROUTE.to_string(),
            messages: vec![Message::new(Role::User, PROMPT)],
            ..Default::default()
        };
        if let Err(failure) = self.runtime.gateway().complete(&self.caller, req).await {
            panic!("the gateway failed: {}", failure.error);
        }
    }

    async fn agent(&self, input: &str) {
        let outcome = self.runtime.run(&self.agent, input, &RunOptions::default()).await.expect("options are valid");
        match outcome.result {
            Ok(output) if output.starts_with(r#"{"ok""#) => {}
            Ok(output) => panic!("the agent's call failed: {output}"),
            Err(e) => panic!("the agent failed: {e}"),
        }
    }
}

/// The request body the host sends for `PROMPT`, byte for byte (checked at start).
fn openai_body() -> Value {
    json!({ "model": MODEL, "messages": [{ "role": "user", "content": PROMPT }] })
}

/// The input that makes the `llm-client` guest call `calls` times.
fn agent_input(calls: u64) -> String {
    json!({ "op": "complete", "route": ROUTE, "prompt": PROMPT, "repeat": calls }).to_string()
}

/// A host whose route `r` goes to the fake at `base_url`, with the
/// `llm-client` guest installed as plugin `client` and granted that route.
fn host(plugins: &Path, base_url: &str) -> Runtime {
    let folder = plugins.join("client");
    std::fs::create_dir_all(&folder).expect("a temporary folder is writable");
    let manifest = format!(
        "name = \"client\"\nversion = \"1.0.0\"\ncomponent = {:?}\n[capabilities]\nroutes = [{ROUTE:?}]\n",
        guests::LLM_CLIENT
    );
    std::fs::write(folder.join("agent.toml"), manifest).expect("a temporary folder is writable");
    // Every loop of the agent rows holds an instance: the pool needs a slot for each.
    let toml = format!(
        "[host]\nplugins = {:?}\ncomponent-dirs = [{:?}]\n[engine]\nmax-instances = 1000\n\
         [providers.fake]\nkind = \"openai\"\nbase-url = \"{base_url}/v1\"\n\
         [routes.{ROUTE}]\ntargets = [{{ provider = \"fake\", model = {MODEL:?} }}]\n",
        plugins.display().to_string(),
        // The test guests' build folder holds the component the plugin names.
        Path::new(guests::LLM_CLIENT).parent().expect("a component has a folder"),
    );
    let settings = Settings::parse(&toml, &plugins.join("paddock.toml")).expect("bench settings are valid");
    Runtime::new(settings).expect("the engine starts")
}

/// A client pooled like the host's own, so that `direct` differs from the
/// host only by what the host does.
fn direct_client() -> reqwest::Client {
    reqwest::Client::builder().tcp_nodelay(true).pool_max_idle_per_host(1024).build().expect("an HTTP client builds")
}

/// What one path measured at one concurrency.
struct Run {
    way: Way,
    concurrency: usize,
    calls: u64,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    /// CPU time of the server process per call, when the path has one.
    server_cpu: Option<Duration>,
}

impl Run {
    fn new(way: Way, concurrency: usize, mut tally: Tally, phases: Phases) -> Run {
        let calls_per_sample = way.calls_per_sample(concurrency);
        tally.nanos.sort_unstable();
        let calls = tally.samples * calls_per_sample as f64;
        let per_call = |q: f64| Duration::from_nanos(percentile(&tally.nanos, q) / calls_per_sample);
        Run {
            way,
            concurrency,
            calls: calls.round() as u64,
            per_second: calls / phases.measured().as_secs_f64(),
            p50: per_call(0.50),
            p99: per_call(0.99),
            server_cpu: tally.server_cpu.map(|s| Duration::from_secs_f64(s / calls.max(1.0))),
        }
    }
}

/// Drives every path in `ways` with `concurrency` loops, taking turns.
async fn measure(subjects: &Arc<Subjects>, ways: &[Way], concurrency: usize, phases: Phases) -> Vec<Run> {
    let mut tallies: Vec<Tally> = ways.iter().map(|_| Tally::default()).collect();
    for _ in 0..phases.rounds {
        for (way, total) in ways.iter().zip(&mut tallies) {
            total.add(stretch(subjects, *way, concurrency, phases).await);
        }
    }
    ways.iter().zip(tallies).map(|(way, tally)| Run::new(*way, concurrency, tally, phases)).collect()
}

/// One warm-up and measured stretch of `way` with `concurrency` loops.
async fn stretch(subjects: &Arc<Subjects>, way: Way, concurrency: usize, phases: Phases) -> Tally {
    let input: Arc<str> = agent_input(way.calls_per_sample(concurrency)).into();
    let from = Instant::now() + phases.warmup;
    let window = Window { from, until: from + phases.measure };
    let loops: Vec<_> =
        (0..concurrency).map(|_| tokio::spawn(call_loop(subjects.clone(), way, input.clone(), window))).collect();
    // The server's CPU time across the measured window.
    let cpu_at = |at: Instant| {
        let pid = subjects.server(way);
        async move {
            tokio::time::sleep_until(at.into()).await;
            pid.and_then(cpu::seconds)
        }
    };
    let before = cpu_at(window.from).await;
    let after = cpu_at(window.until).await;
    let mut total = Tally { server_cpu: after.zip(before).map(|(a, b)| a - b), ..Tally::default() };
    for lp in loops {
        total.add(lp.await.expect("a loop does not panic"));
    }
    total
}

/// The measured part of a stretch.
#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    until: Instant,
}

impl Window {
    /// The share of `began..ended` inside the window.
    fn share(&self, began: Instant, ended: Instant) -> f64 {
        let inside = ended.min(self.until).saturating_duration_since(began.max(self.from));
        inside.as_secs_f64() / (ended - began).as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// What one loop saw.
#[derive(Default)]
struct Tally {
    /// Latencies, in nanoseconds, of the samples that ended in the window.
    nanos: Vec<u64>,
    /// Samples done in the window, each counted by the share of it inside:
    /// an `agent-repeat` sample can last a good part of the window, and
    /// counting it whole or not at all would make its throughput jump.
    samples: f64,
    /// CPU seconds the server process used in the window, when there is one.
    server_cpu: Option<f64>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.nanos.extend(other.nanos);
        self.samples += other.samples;
        self.server_cpu = match (self.server_cpu, other.server_cpu) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }
}

/// Samples back to back until the window ends.
async fn call_loop(subjects: Arc<Subjects>, way: Way, input: Arc<str>, window: Window) -> Tally {
    let mut tally = Tally::default();
    loop {
        let began = Instant::now();
        if began >= window.until {
            return tally;
        }
        subjects.sample(way, &input).await;
        let ended = Instant::now();
        tally.samples += window.share(began, ended);
        if ended >= window.from && ended < window.until {
            tally.nanos.push((ended - began).as_nanos() as u64);
        }
    }
}

/// The nearest-rank percentile `q` of sorted `values` (0 when empty).
fn percentile(values: &[u64], q: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// Checks that `direct` sends what the host sends, so the two differ only by the host.
async fn check_same_body(subjects: &Subjects, fake: &FakeProvider) {
    subjects.gateway().await;
    let sent = fake.requests().pop().expect("the fake recorded the gateway's request").body;
    assert_eq!(sent, openai_body(), "the direct body must be what the gateway sends");
}

async fn bench(fake: &FakeProvider, options: &Options) -> Vec<Run> {
    let plugins = tempfile::tempdir().expect("a temporary folder");
    let runtime = host(plugins.path(), &fake.url());
    let agent = runtime.load("client").unwrap_or_else(|e| panic!("cannot load llm-client: {e}"));
    runtime.wait_optimized(std::time::Duration::from_secs(600));
    let subjects = Arc::new(Subjects {
        http: direct_client(),
        completions_url: format!("{}/v1/chat/completions", fake.url()),
        body: serde_json::to_vec(&openai_body()).expect("JSON values serialise"),
        runtime,
        agent,
        caller: Caller { tenant: "bench".into(), agent: "client".into() },
        keyed: served::Served::start(&fake.url(), true),
        open: served::Served::start(&fake.url(), false),
        litellm: litellm::LiteLlm::start(&fake.url()),
    });
    check_same_body(&subjects, fake).await;
    let mut runs = Vec::new();
    let chosen = |w: &Way| *w == Way::Direct || options.only.as_ref().is_none_or(|only| only.contains(w));
    let ways: Vec<Way> =
        Way::ALL.into_iter().filter(|w| chosen(w) && (*w != Way::LiteLlm || subjects.litellm.is_some())).collect();
    for concurrency in options.concurrency.clone().unwrap_or_else(|| CONCURRENCY.to_vec()) {
        for run in measure(&subjects, &ways, concurrency, options.phases).await {
            eprintln!("{:>12} C={concurrency:<3} {:>7.0} calls/s", run.way.name(), run.per_second);
            runs.push(run);
        }
    }
    runs
}

/// What to run, from the command line and the environment.
struct Options {
    phases: Phases,
    /// `PADDOCK_BENCH_ONLY=<path>[,<path>...]`: `direct` and those paths only.
    only: Option<Vec<Way>>,
    /// `PADDOCK_BENCH_CONCURRENCY=<C>[,<C>...]`: those concurrencies only.
    concurrency: Option<Vec<usize>>,
}

impl Options {
    fn read() -> Options {
        // Cargo passes `--bench`; other arguments are ignored.
        let quick = std::env::args().any(|a| a == "--quick") || env("PADDOCK_BENCH_QUICK").is_some_and(|v| v == "1");
        let only = env("PADDOCK_BENCH_ONLY").map(|names| {
            let way = |name: &str| {
                Way::ALL.into_iter().find(|w| w.name() == name).unwrap_or_else(|| panic!("no path named {name:?}"))
            };
            names.split(',').map(way).collect()
        });
        let concurrency = env("PADDOCK_BENCH_CONCURRENCY").map(|list| {
            let number =
                |c: &str| c.parse().unwrap_or_else(|_| panic!("PADDOCK_BENCH_CONCURRENCY: {c:?} is not a number"));
            list.split(',').map(number).collect()
        });
        Options { phases: Phases::new(quick), only, concurrency }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn main() {
    let options = Options::read();
    // One runtime for the host, the loops and the fake alike. The fake could
    // have a thread of its own, as a remote provider would, but on two cores
    // that third busy thread competes with the workers under the OS
    // scheduler: in trials it made the gateway's extra work per call look
    // half as large (part of it hid in time the fake's thread left idle) and
    // p99 at C = 512 noisier. Sharing the workers makes every microsecond the
    // host spends show in throughput. At C = 1 both ways measured the same
    // added latency.
    let tokio =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio starts");
    let runs = tokio.block_on(async {
        let fake = FakeProvider::start().await.expect("the fake provider starts");
        let runs = bench(&fake, &options).await;
        fake.shutdown().await;
        runs
    });
    let rows = rows(&runs);
    print_table(&rows);
    write_json(&rows, options.phases);
}
