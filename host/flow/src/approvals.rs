//! Questions for people: kept in the flow store, answered with `paddock
//! approve ID OPTION` (or the HTTP API), from this process or another one.
//!
//! A waiting step or agent holds no thread: it awaits a notification — of
//! an answer given in this process, or, on a store shared by hosts, rung by
//! the store for an answer given on any host — or the next poll of the store
//! (an answer given by another process on an embedded store), whichever
//! comes first, until its deadline.

use super::bells::{Bell, rung};
use super::store::{AnswerError, ApprovalRecord, FlowStore, StoreError};
use paddock_runtime::caps::approval::{Approvals, Question};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How often a waiting question looks for an answer another process gave.
const POLL: Duration = Duration::from_millis(200);
/// How often it looks when the store rings for answers (only a ring lost
/// while the store's host reconnected is waited for this long).
const POLL_RUNG: Duration = Duration::from_secs(5);

/// The host's approval service.
pub struct ApprovalService {
    store: Arc<dyn FlowStore>,
    answered: Notify,
    /// The most bytes a question's text and options may take.
    question_bytes: u64,
}

/// Milliseconds since 1970.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// How a wait ended.
#[derive(Debug, PartialEq)]
pub enum Waited {
    /// Someone answered.
    Answered(ApprovalRecord),
    /// The deadline passed first.
    TimedOut(ApprovalRecord),
}

impl ApprovalService {
    /// A service over `store`, keeping questions of at most `question_bytes`.
    pub fn new(store: Arc<dyn FlowStore>, question_bytes: u64) -> Arc<ApprovalService> {
        Arc::new(ApprovalService { store, answered: Notify::new(), question_bytes })
    }

    /// Records a new question and returns it; refused when its text and
    /// options pass `limits.max-question-bytes` or its tenant's bound.
    pub fn create(&self, q: &Question) -> Result<ApprovalRecord, StoreError> {
        let size = (q.text.len() + q.options.iter().map(String::len).sum::<usize>()) as u64;
        if size > self.question_bytes {
            return Err(StoreError::Failed(format!(
                "the question ({} with its options) is over limits.max-question-bytes ({})",
                paddock_core::ByteSize(size),
                paddock_core::ByteSize(self.question_bytes)
            )));
        }
        let created_ms = now_ms();
        let a = ApprovalRecord {
            // 64 random bits: ids are typed by people, and never reused.
            id: format!("ap-{:016x}", fastrand::u64(..)),
            run: q.run.to_string(),
            tenant: q.tenant.to_string(),
            asker: q.asker.clone(),
            question: q.text.clone(),
            options: q.options.clone(),
            created_ms,
            deadline_ms: created_ms.saturating_add(q.timeout.as_millis() as u64),
            answer: None,
            answered_by: None,
            answered_ms: None,
        };
        self.store.add_approval(&a).map_err(StoreError::Failed)?;
        Ok(a)
    }

    /// Answers question `id` with `option`, on behalf of `by`.
    pub fn answer(&self, id: &str, option: &str, by: &str) -> Result<ApprovalRecord, AnswerError> {
        let a = self.store.answer(id, option, by, now_ms())?;
        self.answered.notify_waiters();
        Ok(a)
    }

    /// Waits for question `id` to be answered or to time out.
    pub async fn wait(&self, id: &str) -> Result<Waited, String> {
        let bell = self.store.bells().map(|bells| bells.bell(format!("answer {id}")));
        let poll = if bell.is_some() { POLL_RUNG } else { POLL };
        loop {
            // Registered before reading, so an answer given in between still wakes us.
            let notified = self.answered.notified();
            let ring = bell.as_ref().map(Bell::next);
            let a = self.store.approval(id)?.ok_or_else(|| format!("no approval with id {id:?}"))?;
            if a.answer.is_some() {
                return Ok(Waited::Answered(a));
            }
            let now = now_ms();
            if now >= a.deadline_ms {
                return Ok(Waited::TimedOut(a));
            }
            let left = Duration::from_millis(a.deadline_ms - now);
            tokio::select! {
                () = notified => {}
                () = rung(ring) => {}
                () = tokio::time::sleep(poll.min(left)) => {}
            }
        }
    }
}

/// The service as the agents' `approval` capability sees it.
pub struct AgentQuestions(pub Arc<ApprovalService>);

impl Approvals for AgentQuestions {
    fn ask(&self, question: Question) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'static>> {
        let service = self.0.clone();
        Box::pin(async move {
            let a = service.create(&question).map_err(|e| format!("unavailable: {e}"))?;
            tracing::info!(id = %a.id, asker = %a.asker, "approval asked: {} ({})", a.question, a.options.join(" | "));
            match service.wait(&a.id).await.map_err(|e| format!("unavailable: {e}"))? {
                Waited::Answered(a) => Ok(a.answer.unwrap_or_default()),
                Waited::TimedOut(_) => Err("timeout".to_string()),
            }
        })
    }
}

/// The error for a question id that is already in use.
pub(crate) fn taken(id: &str) -> String {
    format!("flow store: approval id {id:?} is already taken")
}

/// Checks an answer against its question, then records it.
pub(crate) fn apply_answer(a: &mut ApprovalRecord, option: &str, by: &str, now_ms: u64) -> Result<(), AnswerError> {
    if let Some(given) = &a.answer {
        return Err(AnswerError::Answered { id: a.id.clone(), given: given.clone() });
    }
    if now_ms >= a.deadline_ms {
        return Err(AnswerError::TimedOut(a.id.clone()));
    }
    if !a.options.iter().any(|o| o == option) {
        return Err(AnswerError::NotAnOption {
            id: a.id.clone(),
            option: option.to_string(),
            options: a.options.clone(),
        });
    }
    a.answer = Some(option.to_string());
    a.answered_by = Some(by.to_string());
    a.answered_ms = Some(now_ms);
    Ok(())
}
