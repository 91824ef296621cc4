//! `WS /ws/{session_id}` and `WS /ws/{session_id}/{action_type}` (contract gitrecap.md §6).
//!
//! The socket is always accepted first, and every problem is reported as a frame, because a
//! browser cannot read a refused handshake. Every generation ends with exactly one
//! `{"chunk": "</end>"}`; on an error exactly one `{"error": …, "chunk": ""}` comes right before
//! it, then the socket closes with 1008 (bad input) or 1011 (provider failure).

use std::{str::FromStr, sync::Arc};

use axum::{
    extract::{
        Path, State,
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
    },
    response::Response,
};
use futures::StreamExt;
use recap_llm::{CancellationToken, RecapKind, RecapTask};
use serde_json::{Value, json};

use super::{END, safe_chunk};
use crate::{gitrecap::sessions, state::AppState};

const POLICY_VIOLATION: u16 = 1008;
const INTERNAL_ERROR: u16 = 1011;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/ws/{session_id}", axum::routing::get(recap_socket))
        .route("/ws/{session_id}/{action_type}", axum::routing::get(action_socket))
}

async fn recap_socket(State(state): State<AppState>, Path(session_id): Path<String>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| serve(state, session_id, "recap".to_owned(), socket))
}

async fn action_socket(
    State(state): State<AppState>,
    Path((session_id, action_type)): Path<(String, String)>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| serve(state, session_id, action_type, socket))
}

/// A failure that ends the socket: the message for the error frame and the close code.
struct Failure(String, u16);

fn invalid(message: impl Into<String>) -> Failure {
    Failure(message.into(), POLICY_VIOLATION)
}

async fn send(socket: &mut WebSocket, frame: Value) -> bool {
    socket.send(Message::Text(Utf8Bytes::from(frame.to_string()))).await.is_ok()
}

async fn fail(mut socket: WebSocket, Failure(message, code): Failure) {
    let _ = send(&mut socket, json!({"error": message, "chunk": ""})).await;
    let _ = send(&mut socket, json!({"chunk": END})).await;
    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static("") }))).await;
}

async fn serve(state: AppState, session_id: String, action_type: String, mut socket: WebSocket) {
    let session = match sessions::get(&state, &session_id).await {
        Ok(s) => s,
        Err(_) => return fail(socket, invalid("Session not found")).await,
    };
    let Ok(kind) = RecapKind::from_str(&action_type) else {
        return fail(socket, invalid("Invalid action type")).await;
    };
    // One random seed per socket picks the recap's remarks.
    let seed: u64 = rand::random();
    loop {
        let remaining = session.remaining();
        let frame = tokio::select! {
            frame = socket.recv() => frame,
            _ = tokio::time::sleep(remaining) => return fail(socket, invalid("Session expired")).await,
            _ = state.shutdown.cancelled() => return,
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => return fail(socket, invalid("Invalid JSON")).await,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
        };
        let task = match parse_task(kind, text.as_str()) {
            Ok(task) => task,
            Err(failure) => return fail(socket, failure).await,
        };
        if let Err(failure) = generate(&state, &session, &task, seed, &mut socket).await {
            return fail(socket, failure).await;
        }
    }
}

/// Validates one request frame with the contract's exact messages.
fn parse_task(kind: RecapKind, text: &str) -> Result<RecapTask, Failure> {
    let frame: Value = serde_json::from_str(text).map_err(|_| invalid("Invalid JSON"))?;
    let frame = frame.as_object().ok_or_else(|| invalid("Invalid JSON"))?;
    let actions = frame.get("actions").and_then(Value::as_str).map(str::trim).unwrap_or("");
    if actions.is_empty() {
        return Err(invalid("Validation error: Message content is required"));
    }
    Ok(match kind {
        RecapKind::Recap => {
            let n = match frame.get("n") {
                None | Some(Value::Null) => recap_llm::DEFAULT_BULLETS as i64,
                Some(Value::Number(n)) => {
                    n.as_i64().ok_or_else(|| invalid("Validation error: N must be an integer"))?
                }
                Some(Value::String(s)) => {
                    s.trim().parse::<i64>().map_err(|_| invalid("Validation error: N must be an integer"))?
                }
                Some(_) => return Err(invalid("Validation error: N must be an integer")),
            };
            if n > recap_llm::MAX_BULLETS as i64 {
                return Err(invalid("Validation error: N must be <= 15"));
            }
            if n < 1 {
                return Err(invalid("Validation error: N must be >= 1"));
            }
            RecapTask::recap(actions, n as u8)
        }
        RecapKind::Release => RecapTask::Release { actions: actions.to_owned() },
        RecapKind::PullRequest => RecapTask::PullRequest {
            actions: actions.to_owned(),
            source: frame.get("src").and_then(Value::as_str).unwrap_or("").to_owned(),
            target: frame.get("target").and_then(Value::as_str).unwrap_or("").to_owned(),
        },
    })
}

/// Streams one generation; the `</end>` frame is sent here on success.
async fn generate(
    state: &AppState,
    session: &Arc<sessions::Session>,
    task: &RecapTask,
    seed: u64,
    socket: &mut WebSocket,
) -> Result<(), Failure> {
    let cancel = CancellationToken::new();
    let _cancel_on_drop = cancel.clone().drop_guard();
    let provider_error = |e: recap_llm::LlmError| Failure(format!("LLM provider error: {e}"), INTERNAL_ERROR);
    let mut stream = state.llm.stream(task.to_request_seeded(seed), cancel.clone()).await.map_err(provider_error)?;
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            _ = tokio::time::sleep(session.remaining()) => return Err(invalid("Session expired")),
        };
        match next {
            Some(Ok(chunk)) => {
                if !send(socket, json!({"chunk": safe_chunk(chunk)})).await {
                    // The client went away: dropping the stream cancels the provider call.
                    return Ok(());
                }
            }
            Some(Err(e)) => return Err(provider_error(e)),
            None => break,
        }
    }
    send(socket, json!({"chunk": END})).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(r: Result<RecapTask, Failure>) -> String {
        match r {
            Ok(_) => "ok".into(),
            Err(Failure(m, _)) => m,
        }
    }

    #[test]
    fn request_frames_are_validated_with_the_contract_messages() {
        let k = RecapKind::Recap;
        assert_eq!(message(parse_task(k, "nope")), "Invalid JSON");
        assert_eq!(message(parse_task(k, "[1]")), "Invalid JSON");
        assert_eq!(message(parse_task(k, r#"{"n": 5}"#)), "Validation error: Message content is required");
        assert_eq!(message(parse_task(k, r#"{"actions": "x", "n": 16}"#)), "Validation error: N must be <= 15");
        assert_eq!(message(parse_task(k, r#"{"actions": "x", "n": 0}"#)), "Validation error: N must be >= 1");
        assert_eq!(
            message(parse_task(k, r#"{"actions": "x", "n": "five"}"#)),
            "Validation error: N must be an integer"
        );
        assert_eq!(message(parse_task(k, r#"{"actions": "x", "n": 2.5}"#)), "Validation error: N must be an integer");
        assert_eq!(message(parse_task(k, r#"{"actions": "x", "n": "10"}"#)), "ok");
        assert_eq!(message(parse_task(k, r#"{"actions": "x"}"#)), "ok");
    }
}
