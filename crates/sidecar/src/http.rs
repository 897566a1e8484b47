//! The sidecar's local HTTP server: `/metrics` for Prometheus, and the JSON
//! API the `status` and `leave` commands use while the daemon runs.

use crate::agent::NodeAgent;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::watch;

/// Longest a leaving node waits for peers to acknowledge its departure.
pub const LEAVE_LINGER: std::time::Duration = std::time::Duration::from_secs(60);

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The node agent.
    pub agent: Arc<NodeAgent>,
    /// Set to true to stop the daemon.
    pub shutdown: watch::Sender<bool>,
}

/// Body of `POST /api/leave`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LeaveRequest {
    /// Why the node leaves.
    #[serde(default)]
    pub reason: String,
}

/// A JSON error answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong.
    pub error: String,
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(ApiError { error: msg.into() })).into_response()
}

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/api/status", get(status))
        .route("/api/leave", post(leave))
        .with_state(state)
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.agent.metrics.render(),
    )
}

async fn status(State(s): State<AppState>) -> Response {
    match s.agent.status().await {
        Ok(report) => Json(report).into_response(),
        Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

async fn leave(State(s): State<AppState>, body: Option<Json<LeaveRequest>>) -> Response {
    let reason = body.map(|b| b.0.reason).unwrap_or_default();
    let reason = if reason.is_empty() {
        "left by its owner".to_string()
    } else {
        reason
    };
    match s.agent.leave(&reason, LEAVE_LINGER).await {
        Ok(acknowledged) => {
            let _ = s.shutdown.send(true);
            Json(serde_json::json!({ "left": s.agent.node_id, "acknowledged": acknowledged }))
                .into_response()
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}
