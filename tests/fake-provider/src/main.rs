//! `paddock-fake-provider`: the fake LLM provider as a process, driven over
//! its control API (`/_fake/…`).

use std::io::Write as _;

use anyhow::Context as _;
use clap::Parser;
use paddock_fake_provider::FakeProvider;

/// A fake LLM provider speaking the OpenAI, Anthropic, Gemini and Ollama wire
/// formats on 127.0.0.1, with faults injected over its control API.
///
/// It prints one line, `listening on http://127.0.0.1:PORT`, and serves until
/// killed. Exit code 1 means it could not bind the port.
#[derive(Parser)]
#[command(
    version,
    after_help = "Example:\n  paddock-fake-provider --port 0\n  curl -X POST localhost:PORT/_fake/script -d '[{\"kind\":\"fault\",\"fault\":\"rate-limited\",\"retry_after\":{\"seconds\":7}}]'\n  curl localhost:PORT/v1/chat/completions -d '{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'"
)]
struct Args {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let provider = FakeProvider::start_on(args.port)
        .await
        .with_context(|| format!("could not listen on 127.0.0.1:{}", args.port))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", provider.url())?;
    stdout.flush()?;
    drop(stdout);
    std::future::pending::<()>().await;
    Ok(())
}
