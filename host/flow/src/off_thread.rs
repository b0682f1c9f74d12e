//! Starting and resuming runs from a caller on an async thread.
//!
//! [`Flows::begin`] and [`Flows::begin_resume`] load the run's agents, and a
//! load may compile (up to a second for a Python agent) or wait for another
//! caller's build; both also write the run to the store. On a front thread
//! of `paddock serve` that would hold every connection the thread serves, so
//! these do it on a blocking thread unless every agent is serving already.

use crate::spec::Flow;
use crate::{Flows, Start, StartError, Started, events};
use serde_json::Value;

impl Flows {
    /// [`Flows::begin`] for a caller on an async thread: at once when every
    /// agent the flow names is serving, else on a blocking thread.
    pub async fn begin_off_thread(
        &self,
        flow: Flow,
        origin: &str,
        input: Value,
        start: Start,
    ) -> Result<Started, StartError> {
        let runtime = self.runtime();
        if flow.agents().keys().all(|name| runtime.serving_now(name).is_some()) {
            return self.begin(flow, origin, input, start);
        }
        let (flows, origin) = (self.clone(), origin.to_string());
        blocking(move || flows.begin(flow, &origin, input, start)).await
    }

    /// [`Flows::begin_resume`] on a blocking thread: a resumed run's agents
    /// are its pinned versions, which may have to be compiled again.
    pub async fn resume_off_thread(
        &self,
        id: &str,
        events: Option<events::Sink>,
        repin: bool,
    ) -> Result<Started, String> {
        let (flows, id) = (self.clone(), id.to_string());
        blocking(move || flows.begin_resume(&id, events, repin)).await
    }
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => done,
        // Cancelled only as the runtime shuts down.
        Err(e) => std::panic::resume_unwind(e.try_into_panic().unwrap_or_else(|_| Box::new("the host is stopping"))),
    }
}
