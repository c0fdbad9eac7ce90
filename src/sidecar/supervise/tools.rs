//! The MCP tools an agent calls to ask a human: `request_approval` and `notify`.

use super::queue::{Answer, Answered, Decision, Queue, RequestId};
use crate::sidecar::log;
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a waiting call looks for its answer file (a stat; cheap).
pub const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ApprovalParams {
    /// What you want to do, in one line (e.g. "push branch bottle/fix to origin").
    pub action: String,
    /// Why, and anything the human needs to decide.
    #[serde(default)]
    pub details: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NotifyParams {
    /// What the human should know.
    pub message: String,
}

/// How many calls wait on each request (a retried call joins the one pending): a request is
/// withdrawn only when the last of them hangs up. Shared by every MCP session.
pub type Waiting = Arc<Mutex<HashMap<RequestId, usize>>>;

#[derive(Clone)]
pub struct Supervise {
    queue: Queue,
    timeout: Duration,
    waiting: Waiting,
    #[expect(dead_code, reason = "read by the tool_handler macro")]
    tool_router: ToolRouter<Self>,
}

impl Supervise {
    pub fn new(queue: Queue, timeout: Duration, waiting: Waiting) -> Self {
        Self {
            queue,
            timeout,
            waiting,
            tool_router: Self::tool_router(),
        }
    }
}

#[tool_router]
impl Supervise {
    #[tool(
        description = "Ask the human operating this sandbox to approve an action before you take it. Blocks until they answer (or the configured timeout, which answers denied). Returns `approved`, `approved: REASON` or `denied: REASON`; do not take the action unless approved."
    )]
    async fn request_approval(
        &self,
        Parameters(p): Parameters<ApprovalParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let queue = self.queue.clone();
        let timeout_ms = self.timeout.as_millis() as u64;
        let submitted = tokio::task::spawn_blocking(move || {
            queue.submit_or_join(p.action.trim(), &p.details, timeout_ms)
        })
        .await
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let (request, joined) = match submitted {
            Ok(r) => r,
            Err(e) => return Ok(refused(&format!("{e:#}"))),
        };
        log::event(
            "supervise",
            "info",
            if joined {
                "approval request repeated"
            } else {
                "approval requested"
            },
            json!({ "id": request.id, "action": request.action }),
        );
        let mut waiter = Waiter::new(self.queue.clone(), request.id.clone(), &self.waiting);
        let left = request.expires_ms.saturating_sub(super::queue::now_ms());
        let answer = waiter.wait(Duration::from_millis(left)).await;
        waiter.done = true;
        log_answer("approval answered", &answer);
        let mut result = CallToolResult::success(vec![ContentBlock::text(answer.summary())]);
        result.structured_content = Some(json!({
            "id": answer.id,
            "decision": answer.decision.as_str(),
            "reason": answer.reason,
        }));
        Ok(result)
    }

    #[tool(
        description = "Tell the human operating this sandbox something (progress, a finding, that you are stuck). Does not wait for a reply."
    )]
    async fn notify(
        &self,
        Parameters(p): Parameters<NotifyParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let queue = self.queue.clone();
        let filed = tokio::task::spawn_blocking(move || queue.notice(p.message.trim()))
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        match filed {
            Ok(n) => {
                log::event(
                    "supervise",
                    "info",
                    "notice",
                    json!({ "id": n.id, "message": n.message }),
                );
                Ok(CallToolResult::success(vec![ContentBlock::text(
                    "delivered",
                )]))
            }
            Err(e) => Ok(refused(&format!("{e:#}"))),
        }
    }
}

#[tool_handler]
impl ServerHandler for Supervise {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("bottle-supervise", crate::VERSION))
            .with_instructions(
                "Ask the human who runs this sandbox before risky or irreversible actions \
                 (request_approval), and tell them what they should know (notify).",
            )
    }
}

/// A tool-level error the agent reads (not a protocol error): the call was understood but
/// its input cannot be queued.
fn refused(why: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!("refused: {why}"))])
}

/// One JSON line per answer the agent receives (or that closes a request).
pub fn log_answer(msg: &str, a: &Answer) {
    log::event(
        "supervise",
        "info",
        msg,
        json!({
            "id": a.id,
            "decision": a.decision.as_str(),
            "reason": a.reason,
            "by": a.by,
        }),
    );
}

/// Waits for the answer to one request. Dropped early (the agent hung up) by the last call
/// waiting on it, it withdraws the request so no human approves what nobody waits for.
struct Waiter {
    queue: Queue,
    id: RequestId,
    waiting: Waiting,
    done: bool,
}

impl Waiter {
    fn new(queue: Queue, id: RequestId, waiting: &Waiting) -> Self {
        if let Ok(mut w) = waiting.lock() {
            *w.entry(id.clone()).or_default() += 1;
        }
        Self {
            queue,
            id,
            waiting: Arc::clone(waiting),
            done: false,
        }
    }

    async fn wait(&self, timeout: Duration) -> Answer {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let queue = self.queue.clone();
            let id = self.id.clone();
            match tokio::task::spawn_blocking(move || queue.answer(&id)).await {
                Ok(Ok(Some(a))) => return a,
                Ok(Ok(None)) => {}
                Ok(Err(e)) => log::event(
                    "supervise",
                    "warn",
                    "unreadable answer",
                    json!({ "id": self.id, "error": format!("{e:#}") }),
                ),
                Err(e) => log::event(
                    "supervise",
                    "error",
                    "answer check failed",
                    json!({ "id": self.id, "error": e.to_string() }),
                ),
            }
            if tokio::time::Instant::now() >= deadline {
                let (queue, id) = (self.queue.clone(), self.id.clone());
                return tokio::task::spawn_blocking(move || close(&queue, &id, "timed out"))
                    .await
                    .unwrap_or_else(|_| {
                        Answer::new(
                            self.id.clone(),
                            Decision::Denied,
                            Some("timed out".into()),
                            "supervise",
                        )
                    });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Closes `id` as supervise ("denied: REASON") unless an answer stands; returns the one that
/// stands.
fn close(queue: &Queue, id: &RequestId, reason: &str) -> Answer {
    match queue.close(id, reason, "supervise") {
        Ok(Answered::Recorded(a) | Answered::Already(a)) => a,
        Err(e) => {
            log::event(
                "supervise",
                "error",
                "cannot record an answer",
                json!({ "id": id, "error": format!("{e:#}") }),
            );
            Answer::new(
                id.clone(),
                Decision::Denied,
                Some(reason.into()),
                "supervise",
            )
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let last = self.waiting.lock().is_ok_and(|mut w| {
            let n = w.entry(self.id.clone()).or_default();
            *n = n.saturating_sub(1);
            let last = *n == 0;
            if last {
                w.remove(&self.id);
            }
            last
        });
        if self.done || !last {
            return;
        }
        let (queue, id) = (self.queue.clone(), self.id.clone());
        // File work off the runtime's threads.
        let work = move || {
            let a = close(&queue, &id, "withdrawn: the agent stopped waiting");
            log_answer("approval withdrawn", &a);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(work);
            }
            Err(_) => work(),
        }
    }
}
