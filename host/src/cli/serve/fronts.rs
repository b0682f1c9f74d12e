//! The front threads: where `paddock serve`'s connections are served.
//!
//! On one multi-threaded runtime a request moved between threads at each
//! wake-up: its connection was read on one worker, its agent's LLM answer
//! came back on the pooled connection's task wherever that ran, and a
//! parked worker was woken to look for work each time a task was queued. On
//! this 2-core VM each hand-over is a futex wake and a context switch, and
//! between requests (below saturation) a third of the serving process's CPU
//! was that scheduling. So each accepted connection goes to one of a few
//! threads, each with a single-threaded runtime of its own, and stays there:
//! its requests are parsed, checked, routed, run (the agent starts on the
//! same thread) and answered there, and the gateway gives each front thread
//! its own connection pool ([`paddock_core::front`]), so the LLM call's
//! bytes are read there too.
//!
//! A connection goes to the front with the fewest connections open. What
//! must not hold a front thread does not: an invocation that computes for a
//! whole epoch tick moves to the guest threads, as it moved off the
//! multi-threaded runtime's workers before, and work that outlives its
//! request (a flow run) is started on the host's shared runtime
//! ([`spawn_shared`]), where its steps use every core, and an agent a
//! request names that is not serving yet is loaded (compiled, or waited
//! for) on a blocking thread (`Runtime::load_off_thread`).
//!
//! A store call blocks the thread that makes it. SQLite's take microseconds;
//! a PostgreSQL round trip is longer, and on the shared runtime the wait
//! hands the worker's other tasks to another thread (`block_in_place`),
//! which a single-threaded runtime cannot. So with `[store] backend =
//! "postgres"` connections are served on the shared runtime unless
//! `serve.threads` says otherwise ([`default_count`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The front threads, stopped when dropped (connections still open on them
/// are closed).
pub struct Fronts {
    fronts: Vec<Front>,
}

struct Front {
    handle: Handle,
    /// The connections open on this front.
    open: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A connection's place on a front, given back when its task ends.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub use paddock_core::front::spawn_shared;

/// How many front threads `settings` asks for: `serve.threads`, else one a
/// core, or none with the stores on PostgreSQL.
pub fn default_count(settings: &crate::config::Settings) -> usize {
    match settings.serve.threads {
        Some(threads) => threads,
        None if settings.postgres.is_some() => 0,
        None => std::thread::available_parallelism().map_or(2, |n| n.get()),
    }
}

impl Fronts {
    /// Starts `count` front threads; with none, connections are served on
    /// the caller's runtime. Called on the host's shared runtime, which
    /// [`spawn_shared`] then starts work on.
    /// Each runs `prepare` first, as a front, before `start` returns.
    pub fn start(count: usize, prepare: Arc<dyn Fn() + Send + Sync>) -> std::io::Result<Fronts> {
        let shared = Handle::try_current().ok();
        let fronts = (0..count)
            .map(|index| Front::start(index, shared.clone(), prepare.clone()))
            .collect::<std::io::Result<_>>()?;
        Ok(Fronts { fronts })
    }

    /// Serves `stream` on the front with the fewest connections open:
    /// `serve` is called there with the stream registered on that front's
    /// runtime. A stream that cannot move is closed (the error is logged).
    pub fn spawn<S, F>(&self, stream: TcpStream, serve: S)
    where
        S: FnOnce(TcpStream) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(front) = self.fronts.iter().min_by_key(|f| f.open.load(Ordering::Relaxed)) else {
            tokio::spawn(serve(stream));
            return;
        };
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => return tracing::warn!(error = %e, "cannot hand a connection to a front thread"),
        };
        front.open.fetch_add(1, Ordering::Relaxed);
        let open = Open(front.open.clone());
        front.handle.spawn(async move {
            let _open = open;
            match TcpStream::from_std(stream) {
                Ok(stream) => serve(stream).await,
                Err(e) => tracing::warn!(error = %e, "cannot register a connection on a front thread"),
            }
        });
    }
}

impl Front {
    fn start(index: usize, shared: Option<Handle>, prepare: Arc<dyn Fn() + Send + Sync>) -> std::io::Result<Front> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let (started, running) = std::sync::mpsc::sync_channel(0);
        let thread = std::thread::Builder::new().name(format!("paddock-front-{index}")).spawn(move || {
            paddock_core::front::enter(index, shared);
            prepare();
            let _ = started.send(());
            let _ = runtime.block_on(stopped);
            runtime.shutdown_background();
        })?;
        // Running (and named) before `start` returns.
        let _ = running.recv();
        Ok(Front { handle, open: Arc::default(), stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    /// Hands `count` new connections to `fronts`; each reports the front it
    /// is served on and stays open until its sender is dropped.
    async fn connect(
        fronts: &Fronts,
        listener: &TcpListener,
        count: usize,
    ) -> (Vec<Option<usize>>, Vec<oneshot::Sender<()>>, Vec<std::net::TcpStream>) {
        let address = listener.local_addr().unwrap();
        let (mut served_on, mut holds, mut clients) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..count {
            clients.push(std::net::TcpStream::connect(address).unwrap());
            let (stream, _) = listener.accept().await.unwrap();
            let (report, reported) = oneshot::channel();
            let (hold, held) = oneshot::channel::<()>();
            fronts.spawn(stream, move |stream| async move {
                let before = paddock_core::front::index();
                tokio::task::yield_now().await;
                assert_eq!(paddock_core::front::index(), before, "a connection stays on its front");
                let _ = report.send(before);
                let _ = held.await;
                drop(stream);
            });
            served_on.push(reported.await.unwrap());
            holds.push(hold);
        }
        (served_on, holds, clients)
    }

    #[tokio::test]
    async fn each_connection_goes_to_the_front_with_the_fewest_open_and_is_served_there() {
        let fronts = Fronts::start(2, Arc::new(|| {})).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (served_on, mut holds, _clients) = connect(&fronts, &listener, 4).await;
        assert_eq!(served_on, [Some(0), Some(1), Some(0), Some(1)]);
        // The first connection closes: front 0 has one open, front 1 two.
        drop(holds.remove(0));
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            while fronts.fronts[0].open.load(Ordering::Relaxed) != 1 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        closed.await.expect("the connection's place is given back when its task ends");
        let (next, _more, _also) = connect(&fronts, &listener, 1).await;
        assert_eq!(next, [Some(0)]);
    }

    #[tokio::test]
    async fn each_front_is_prepared_on_its_own_thread_as_a_front_before_start_returns() {
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let record = seen.clone();
        let prepare = Arc::new(move || {
            let name = std::thread::current().name().map(str::to_string);
            record.lock().push((paddock_core::front::index(), name));
        });
        let _fronts = Fronts::start(2, prepare).unwrap();
        let seen = seen.lock().clone();
        let named = |i: usize| Some(format!("paddock-front-{i}"));
        assert_eq!(seen, [(Some(0), named(0)), (Some(1), named(1))]);
    }

    #[test]
    fn one_front_a_core_by_default_none_with_postgresql_stores_and_serve_threads_over_both() {
        let count = |toml: &str| {
            let settings = crate::config::Settings::parse(toml, std::path::Path::new("paddock.toml")).unwrap();
            default_count(&settings)
        };
        let pg = "[store]\nbackend = \"postgres\"\nurl = \"postgres://app@db:5432/paddock\"\n";
        assert_eq!(count(""), std::thread::available_parallelism().unwrap().get());
        assert_eq!(count(pg), 0);
        assert_eq!(count(&format!("{pg}[serve]\nthreads = 4\n")), 4);
        assert_eq!(count("[serve]\nthreads = 0\n"), 0);
    }

    #[tokio::test]
    async fn without_fronts_connections_are_served_on_the_callers_runtime() {
        let fronts = Fronts::start(0, Arc::new(|| {})).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (served_on, _holds, _clients) = connect(&fronts, &listener, 2).await;
        assert_eq!(served_on, [None, None]);
    }

    #[tokio::test]
    async fn work_a_front_starts_to_outlive_its_request_runs_on_the_shared_runtime() {
        let fronts = Fronts::start(1, Arc::new(|| {})).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let address = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(address).unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        fronts.spawn(stream, move |_stream| async move {
            let here = paddock_core::front::index();
            let there = spawn_shared(async { paddock_core::front::index() }).await.unwrap();
            tx.send((here, there)).unwrap();
        });
        assert_eq!(rx.recv().await, Some((Some(0), None)));
    }

    /// An LLM call on each of two fronts, the first of which then holds its
    /// thread: the second's call must not wait for it.
    #[tokio::test]
    async fn an_llm_call_on_one_front_is_answered_while_another_front_is_held() {
        use crate::gateway::Caller;
        use crate::gateway::types::{ChatRequest, Message, Role};
        let fake = paddock_fake_provider::FakeProvider::start().await.unwrap();
        let toml = format!(
            "[providers.fake]\nkind = \"openai\"\nbase-url = \"{}/v1\"\n\
             [routes.r]\ntargets = [{{ provider = \"fake\", model = \"m\" }}]\n",
            fake.url()
        );
        let settings = crate::config::Settings::parse(&toml, std::path::Path::new("paddock.toml")).unwrap();
        let gateway = crate::gateway::Gateway::new(&settings.gateway).unwrap();
        let fronts = Fronts::start(2, Arc::new(|| {})).unwrap();
        let call = |gateway: crate::gateway::Gateway| async move {
            let caller = Caller { tenant: "t".into(), agent: "a".into() };
            let request =
                ChatRequest { route: "r".into(), messages: vec![Message::new(Role::User, "hi")], ..Default::default() };
            gateway.complete(&caller, request).await.map(|_| ()).map_err(|f| format!("{f:?}"))
        };
        let first = fronts.fronts[0].handle.spawn(call(gateway.clone()));
        assert_eq!(first.await.unwrap(), Ok(()));
        // Front 0 now holds a pooled connection to the fake, driven by a
        // task of its own; its thread is then held for three seconds.
        let (held, holding) = oneshot::channel();
        fronts.fronts[0].handle.spawn(async move {
            let _ = held.send(());
            std::thread::sleep(Duration::from_secs(3));
        });
        holding.await.unwrap();
        let second = fronts.fronts[1].handle.spawn(call(gateway.clone()));
        let answered = tokio::time::timeout(Duration::from_secs(2), second).await;
        assert_eq!(answered.expect("answered while front 0 is held").unwrap(), Ok(()));
        assert_eq!(fake.request_count(), 2);
    }
}
