//! The notes server shared by the examples: three tools that show who is
//! calling and what their token allows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mcp_oauth2::{AuthConfigBuilder, AuthContext};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde::Deserialize;

/// Scope that reads notes.
pub(crate) const NOTES_READ: &str = "notes:read";
/// Scope that writes notes; it implies [`NOTES_READ`].
pub(crate) const NOTES_WRITE: &str = "notes:write";

/// Notes per subject, shared by every session of the process.
pub(crate) type NoteStore = Arc<Mutex<HashMap<String, Vec<String>>>>;

/// The MCP server.
#[derive(Clone)]
pub(crate) struct NotesServer {
    notes: NoteStore,
    tool_router: ToolRouter<Self>,
}

/// Arguments of `add_note`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct AddNote {
    /// The note's text.
    pub(crate) text: String,
}

/// The notes server's scope rules: `list_notes` needs `notes:read`,
/// `add_note` needs `notes:write`, and `notes:write` implies `notes:read`.
/// The layer enforces them with a real HTTP 403 before rmcp dispatches.
pub(crate) fn declare_scopes(config: AuthConfigBuilder) -> AuthConfigBuilder {
    config
        .tool_scopes("list_notes", [NOTES_READ])
        .tool_scopes("add_note", [NOTES_WRITE])
        .scope_implies(NOTES_WRITE, [NOTES_READ])
}

#[tool_router]
impl NotesServer {
    /// A server over `notes`.
    pub(crate) fn new(notes: NoteStore) -> Self {
        Self {
            notes,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Who is calling: subject, client_id and scopes of the access token, as JSON"
    )]
    async fn whoami(&self, auth: AuthContext) -> Result<String, rmcp::ErrorData> {
        Ok(serde_json::json!({
            "subject": auth.subject(),
            "client_id": auth.client_id(),
            "scopes": auth.scopes(),
            "issuer": auth.issuer(),
        })
        .to_string())
    }

    #[tool(description = "List your notes (scope notes:read)")]
    async fn list_notes(&self, auth: AuthContext) -> Result<String, rmcp::ErrorData> {
        // Already enforced by the layer; checked again here (hierarchy-aware)
        // as defense in depth.
        auth.require_scopes([NOTES_READ])?;
        let notes = self
            .notes
            .lock()
            .map_err(|_| rmcp::ErrorData::internal_error("store poisoned", None))?;
        let mine = notes.get(auth.subject()).cloned().unwrap_or_default();
        Ok(serde_json::json!({ "notes": mine }).to_string())
    }

    #[tool(description = "Add a note (scope notes:write)")]
    async fn add_note(
        &self,
        auth: AuthContext,
        Parameters(AddNote { text }): Parameters<AddNote>,
    ) -> Result<String, rmcp::ErrorData> {
        auth.require_scopes([NOTES_WRITE])?;
        let mut notes = self
            .notes
            .lock()
            .map_err(|_| rmcp::ErrorData::internal_error("store poisoned", None))?;
        let mine = notes.entry(auth.subject().to_owned()).or_default();
        mine.push(text);
        Ok(serde_json::json!({ "added": true, "count": mine.len() }).to_string())
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for NotesServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "mcp-oauth2-notes",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "A notes server protected by OAuth 2.1. whoami tells you who you are.",
            )
    }
}
