use super::{Gather, Records};
use crate::store::{Finished, StepRecord};
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A run's writes through one `Gather` to a store that logs each commit's
/// checkpoints, holds its first commit until released (so the tasks after it
/// queue) and refuses any commit holding the checkpoint `refuse`.
struct Store {
    gather: Gather,
    commits: Mutex<Vec<Vec<String>>>,
    released: AtomicBool,
    refuse: Option<&'static str>,
    /// A checkpoint whose commit panics.
    panic: Option<&'static str>,
}

impl Store {
    fn new(refuse: Option<&'static str>, panic: Option<&'static str>) -> Arc<Store> {
        Arc::new(Store {
            gather: Gather::default(),
            commits: Mutex::default(),
            released: AtomicBool::new(false),
            refuse,
            panic,
        })
    }

    fn put(&self, _: &[Finished], next: &[StepRecord]) -> Result<(), String> {
        let paths: Vec<String> = next.iter().map(|s| s.path.clone()).collect();
        let first = {
            let mut commits = self.commits.lock();
            commits.push(paths.clone());
            commits.len() == 1
        };
        if first {
            until("the test releases the first commit", || self.released.load(Ordering::SeqCst));
        }
        if let Some(bad) = self.panic {
            assert!(!paths.iter().any(|p| p == bad), "the store panics writing {bad}");
        }
        match self.refuse {
            Some(bad) if paths.iter().any(|p| p == bad) => Err(format!("{bad} is refused")),
            _ => Ok(()),
        }
    }

    async fn write(self: Arc<Self>, path: &'static str) -> Result<(), String> {
        let put = |done: &[Finished], next: &[StepRecord]| self.put(done, next);
        let records = Records { done: Vec::new(), next: vec![crate::testing::step(path, "{}")] };
        self.gather.write(&put, records).await
    }

    fn waiting(&self) -> usize {
        self.gather.queue.lock().waiting.len()
    }

    fn commits(&self) -> Vec<Vec<String>> {
        let mut commits = self.commits.lock().clone();
        // Tasks queue in whatever order the runtime ran them.
        commits.iter_mut().for_each(|c| c.sort());
        commits
    }
}

fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

type Task = tokio::task::JoinHandle<Result<(), String>>;

/// `first` writing (its commit held), then `rest` queued behind it.
fn queued(store: &Arc<Store>, first: &'static str, rest: &[&'static str]) -> (Task, Vec<Task>) {
    let lead = tokio::spawn(store.clone().write(first));
    until("the first commit starts", || store.commits.lock().len() == 1);
    let tasks = rest.iter().map(|p| tokio::spawn(store.clone().write(p))).collect();
    until("the others queue", || store.waiting() == rest.len());
    (lead, tasks)
}

const REST: [&str; 7] = ["b1", "b2", "b3", "b4", "b5", "b6", "b7"];

fn strings(paths: &[&str]) -> Vec<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_tasks_write_while_a_commit_is_under_way_share_the_next_commit() {
    let store = Store::new(None, None);
    let (lead, rest) = queued(&store, "a0", &REST);
    store.released.store(true, Ordering::SeqCst);
    assert_eq!(lead.await.unwrap(), Ok(()));
    for task in rest {
        assert_eq!(task.await.unwrap(), Ok(()));
    }
    assert_eq!(store.commits(), [strings(&["a0"]), strings(&REST)]);
    // Alone, a write commits at once, by itself.
    store.clone().write("c").await.unwrap();
    assert_eq!(store.commits().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_commit_is_written_again_a_task_at_a_time_so_only_the_refused_task_fails() {
    let store = Store::new(Some("b3"), None);
    let (lead, rest) = queued(&store, "a0", &REST);
    store.released.store(true, Ordering::SeqCst);
    assert_eq!(lead.await.unwrap(), Ok(()));
    let mut outcomes = Vec::new();
    for (path, task) in REST.iter().zip(rest) {
        outcomes.push((*path, task.await.unwrap()));
    }
    let failed: Vec<_> = outcomes.iter().filter(|(_, o)| o.is_err()).collect();
    assert_eq!(failed, [&("b3", Err("b3 is refused".to_string()))]);
    let commits = store.commits();
    assert_eq!(commits[..2], [strings(&["a0"]), strings(&REST)]);
    let mut alone: Vec<String> = commits[2..].iter().map(|c| c.join(",")).collect();
    alone.sort();
    assert_eq!(alone, strings(&REST), "then each task's records alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_cancelled_while_it_waits_leaves_nobody_behind_it_waiting() {
    let store = Store::new(None, None);
    let lead = tokio::spawn(store.clone().write("a0"));
    until("the first commit starts", || store.commits.lock().len() == 1);
    // The first in the queue, the one the writer hands the queue to.
    let cancelled = tokio::spawn(store.clone().write("b1"));
    until("b1 queues", || store.waiting() == 1);
    let rest: Vec<Task> = REST[1..].iter().map(|p| tokio::spawn(store.clone().write(p))).collect();
    until("the others queue", || store.waiting() == REST.len());
    cancelled.abort();
    assert!(cancelled.await.unwrap_err().is_cancelled());
    store.released.store(true, Ordering::SeqCst);
    assert_eq!(lead.await.unwrap(), Ok(()));
    for task in rest {
        assert_eq!(task.await.unwrap(), Ok(()));
    }
    // The writer kept the cancelled task's records for the next commit and wrote it itself.
    assert_eq!(store.commits(), [strings(&["a0"]), strings(&REST)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_whose_store_panics_lets_the_queue_go_and_the_tasks_waiting_learn_their_write_was_dropped() {
    let store = Store::new(None, Some("a0"));
    let (lead, rest) = queued(&store, "a0", &REST);
    store.released.store(true, Ordering::SeqCst);
    assert!(lead.await.unwrap_err().is_panic());
    for task in rest {
        assert_eq!(
            task.await.unwrap(),
            Err("flow store: the batch holding this write was dropped unwritten".to_string())
        );
    }
    // The run's next write goes through, alone.
    store.clone().write("c").await.unwrap();
    assert_eq!(store.commits(), [strings(&["a0"]), strings(&["c"])]);
}
