//! AI recaps: the Git Recap WebSocket protocol (`/ws/{session_id}[/{action_type}]`) and recaps of
//! Recap projects over HTTP (Server-Sent Events, or one JSON answer with `stream=false`).

pub mod project;
pub mod ws;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(project::router())
}

/// The frontend stops reading at exactly this chunk.
pub const END: &str = "</end>";

/// A model delta that happens to be the end marker must not end the stream early.
pub fn safe_chunk(chunk: String) -> String {
    if chunk == END { "<\u{200B}/end>".to_owned() } else { chunk }
}
