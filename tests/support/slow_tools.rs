//! An rmcp server whose tools take their time and count how many of their
//! handlers run at once: the oracle of the tests that bound the handlers of
//! abandoned and reset calls (`h2_surface`, `connection_limits`). Neither
//! tool watches its cancellation token, as most handlers do not.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Handlers running now, and the most at once (one per test: tests run in
/// parallel).
#[derive(Debug, Default)]
pub struct Count {
    /// Running now.
    pub now: AtomicUsize,
    /// The most at once so far.
    pub peak: AtomicUsize,
}

impl Count {
    /// Counts one more running until the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> Entered {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Entered(Arc::clone(self))
    }

    /// The most at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// One counted in [`Count`] until dropped.
pub struct Entered(Arc<Count>);

impl Drop for Entered {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The server: `slow` takes `delay`; `chatty` sends a log message first
/// (so an event stream's head leaves at once), then takes `delay`.
#[derive(Clone)]
pub struct Slow {
    count: Arc<Count>,
    delay: Duration,
    tool_router: rmcp::handler::server::router::tool::ToolRouter<Self>,
}

impl Slow {
    /// A server counting its running handlers into `count`.
    pub fn new(count: &Arc<Count>, delay: Duration) -> Self {
        Self {
            count: Arc::clone(count),
            delay,
            tool_router: Self::tool_router(),
        }
    }
}

#[rmcp::tool_router]
impl Slow {
    #[rmcp::tool(description = "takes its time")]
    async fn slow(&self) -> String {
        let _entered = self.count.enter();
        tokio::time::sleep(self.delay).await;
        "done".to_owned()
    }

    #[rmcp::tool(description = "logs, then takes its time")]
    async fn chatty(
        &self,
        context: rmcp::service::RequestContext<rmcp::service::RoleServer>,
    ) -> String {
        let _entered = self.count.enter();
        #[allow(deprecated)]
        let message = rmcp::model::LoggingMessageNotificationParam::new(
            rmcp::model::LoggingLevel::Info,
            serde_json::json!("starting"),
        );
        #[allow(deprecated)]
        let _ = context.peer.notify_logging_message(message).await;
        tokio::time::sleep(self.delay).await;
        "done".to_owned()
    }
}

#[rmcp::tool_handler(router = self.tool_router)]
impl rmcp::ServerHandler for Slow {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(
            rmcp::model::ServerCapabilities::builder()
                .enable_tools()
                .build(),
        )
    }
}
