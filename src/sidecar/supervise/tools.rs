//! The MCP tools an agent calls to ask a human: `request_approval` and `notify`.

use super::queue::{Answer, Decision, Queue, RequestId};
use crate::sidecar::log;
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// How often a waiting call looks for its answer file (a stat; cheap).
pub const POLL: Duration = Duration::from_millis(200);

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

#[derive(Clone)]
pub struct Supervise {
    queue: Queue,
    timeout: Duration,
    #[expect(dead_code, reason = "read by the tool_handler macro")]
    tool_router: ToolRouter<Self>,
}

impl Supervise {
    pub fn new(queue: Queue, timeout: Duration) -> Self {
        Self {
            queue,
            timeout,
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
        let mut waiter = Waiter {
            queue: self.queue.clone(),
            id: request.id.clone(),
            done: false,
        };
        let left = request.expires_ms.saturating_sub(super::queue::now_ms());
        let answer = waiter.wait(Duration::from_millis(left)).await;
        waiter.done = true;
        log::event(
            "supervise",
            "info",
            "approval answered",
            json!({
                "id": answer.id,
                "decision": answer.decision.as_str(),
                "reason": answer.reason,
                "by": answer.by,
            }),
        );
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

/// Waits for the answer to one request. Dropped early (the agent hung up), it withdraws the
/// request so no human approves what nobody waits for.
struct Waiter {
    queue: Queue,
    id: RequestId,
    done: bool,
}

impl Waiter {
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
                return self.close("timed out");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Answers denied on supervise's behalf unless a human got there first.
    fn close(&self, reason: &str) -> Answer {
        let ours = Answer::new(
            self.id.clone(),
            Decision::Denied,
            Some(reason.into()),
            "supervise",
        );
        match self.queue.answer_with(ours.clone()) {
            Ok(super::queue::Answered::Recorded(a) | super::queue::Answered::Already(a)) => a,
            Err(e) => {
                log::event(
                    "supervise",
                    "error",
                    "cannot record an answer",
                    json!({ "id": self.id, "error": format!("{e:#}") }),
                );
                ours
            }
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if !self.done {
            let a = self.close("withdrawn: the agent stopped waiting");
            log::event(
                "supervise",
                "info",
                "approval withdrawn",
                json!({ "id": a.id, "decision": a.decision.as_str(), "reason": a.reason }),
            );
        }
    }
}
