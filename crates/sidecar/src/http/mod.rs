//! The sidecar's HTTP server.
//!
//! - `/metrics`: Prometheus text, open.
//! - `/shards/{hash}`: signed shard transfers between sidecars (`PUT` to
//!   deliver, `GET` to fetch); every request is authenticated by its
//!   signature and authorized against the DHT, never by the token.
//! - `/api/*`: the local API used by the `status`, `leave`, `store` and
//!   `fetch` commands and the recovery routes (`docs/recovery-openapi.yaml`);
//!   it needs the token in the data directory.
//! - `/`, `/setup`, `/settings`, `/earnings`, `/dashboard`: the local
//!   participation pages (`ui.rs`), for this machine only.

pub mod network_view;
pub mod ui;

use crate::custody::store::StoreError;
use crate::custody::{Custody, CustodyError, Progress, PublishRequest};
use crate::node::agent::NodeAgent;
use crate::recovery::{Recovery, RecoveryError};
use crate::transfer::{TransferAuth, TransferError};
use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

/// Longest a leaving node waits for peers to acknowledge its departure.
pub const LEAVE_LINGER: std::time::Duration = std::time::Duration::from_secs(60);
/// Header carrying the local API token.
pub const H_TOKEN: &str = "x-elohim-token";

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The node agent.
    pub agent: Arc<NodeAgent>,
    /// The custody engine.
    pub custody: Arc<Custody>,
    /// The recovery engine.
    pub recovery: Arc<Recovery>,
    /// Set to true to stop the daemon.
    pub shutdown: watch::Sender<bool>,
    /// The local API token.
    pub api_token: String,
    /// What the dashboard shows of the network, kept in memory.
    pub network: Arc<crate::http::network_view::NetworkView>,
}

/// Body of `POST /api/leave`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LeaveRequest {
    /// Why the node leaves.
    #[serde(default)]
    pub reason: String,
}

/// Body of `POST /api/content/{id}/fetch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchRequest {
    /// Where to write the content on this machine.
    pub out: PathBuf,
}

/// A JSON error answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong.
    pub error: String,
}

/// One line of a streamed (NDJSON) answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamLine<T> {
    /// Progress of the work.
    Progress(Progress),
    /// The outcome.
    Result(T),
    /// The failure.
    Error(String),
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(ApiError { error: msg.into() })).into_response()
}

impl IntoResponse for TransferError {
    fn into_response(self) -> Response {
        let status = match &self {
            TransferError::BadRequest(_) => StatusCode::BAD_REQUEST,
            TransferError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            TransferError::Forbidden(_) => StatusCode::FORBIDDEN,
            TransferError::HashMismatch(_) => StatusCode::UNPROCESSABLE_ENTITY,
            TransferError::Conflict(_) | TransferError::Replayed(_) => StatusCode::CONFLICT,
            TransferError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            TransferError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            TransferError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            TransferError::NotFound(_) => StatusCode::NOT_FOUND,
            TransferError::ResumeMismatch(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            TransferError::NotYet(_) => StatusCode::SERVICE_UNAVAILABLE,
            TransferError::Upstream(_) => StatusCode::BAD_GATEWAY,
        };
        error(status, self.to_string())
    }
}

impl IntoResponse for CustodyError {
    fn into_response(self) -> Response {
        let status = match &self {
            CustodyError::BadRequest(_) | CustodyError::InvalidContentId(_) => {
                StatusCode::BAD_REQUEST
            }
            CustodyError::AlreadyPublished { .. } => StatusCode::CONFLICT,
            CustodyError::UnknownContent(_) => StatusCode::NOT_FOUND,
            CustodyError::MissingKey(_) | CustodyError::Hint(_) => StatusCode::FORBIDDEN,
            CustodyError::Deferred(_) => StatusCode::SERVICE_UNAVAILABLE,
            CustodyError::NotEnoughCustodians { .. } | CustodyError::TooFewShards { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            CustodyError::Conductor(_) | CustodyError::Transfer { .. } => StatusCode::BAD_GATEWAY,
            CustodyError::Store(_) | CustodyError::Codec(_) | CustodyError::Io(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        error(status, self.to_string())
    }
}

/// The router.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/status", get(status))
        .route("/api/records", get(records))
        .route("/api/leave", post(leave))
        .route("/api/content", post(publish))
        .route("/api/content/{id}/fetch", post(fetch))
        .route("/api/custody", get(custody))
        .route("/api/reconcile", post(reconcile))
        .route("/api/recovery/initiate", post(recovery_initiate))
        .route("/api/recovery/approve", post(recovery_approve))
        .route("/api/recovery/sync", post(recovery_sync))
        .route("/api/recovery/{id}", get(recovery_report))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/ping", get(ping))
        .route("/shards/{hash}", put(put_shard).get(get_shard))
        .route("/shards/{hash}/ready", get(shard_ready))
        .merge(api)
        .merge(crate::http::ui::routes())
        .with_state(state)
}

async fn require_token(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let given = req.headers().get(H_TOKEN).map(|v| v.as_bytes());
    if !given.is_some_and(|g| crate::datadir::secrets_equal(g, s.api_token.as_bytes())) {
        return error(
            StatusCode::UNAUTHORIZED,
            format!("missing or wrong {H_TOKEN} (it is in the data directory's api-token file)"),
        );
    }
    next.run(req).await
}

/// What a publisher asks before it places a shard here: is this sidecar up.
/// Says nothing else.
async fn ping() -> &'static str {
    "elohim-sidecar"
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

async fn records(State(s): State<AppState>) -> Response {
    match s.agent.chain_records().await {
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

async fn put_shard(
    State(s): State<AppState>,
    UrlPath(hash): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    use futures_util::StreamExt;
    let auth = match TransferAuth::from_headers(&headers) {
        Ok(a) => a,
        Err(e) => return answer_early(body, e.into_response()).await,
    };
    if let Err(e) = crate::custody::store::check_hash(&hash) {
        let refusal = TransferError::BadRequest(e.to_string()).into_response();
        return answer_early(body, refusal).await;
    }
    let early = match headers.get(crate::transfer::H_ASSIGNMENT_ENTRY) {
        None => None,
        Some(v) => match v
            .to_str()
            .map_err(|_| {
                TransferError::BadRequest(format!(
                    "{} is not text",
                    crate::transfer::H_ASSIGNMENT_ENTRY
                ))
            })
            .and_then(crate::transfer::decode_assignment_entry)
        {
            Ok(a) => Some(a),
            Err(e) => return answer_early(body, e.into_response()).await,
        },
    };
    let grant = match s.custody.authorize_put(&auth, &hash, early.as_ref()).await {
        Ok(g) => g,
        Err(e) => return answer_early(body, e.into_response()).await,
    };
    let (meta, shard_size) = (grant.meta, grant.shard_size);
    let too_large = |what: String| {
        TransferError::TooLarge(format!(
            "{what}, but the assignment's shard is {shard_size} bytes; nothing was kept"
        ))
        .into_response()
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|len| *len > shard_size) {
        return answer_early(body, too_large(format!("the body is {len} bytes"))).await;
    }
    if s.custody.store.has(&hash) {
        let held = (StatusCode::OK, Json(serde_json::json!({ "held": hash }))).into_response();
        return answer_early(body, held).await;
    }
    let _receiving = s.custody.receiving(&hash);
    let metrics = s.custody.agent.metrics.clone();
    let store_failed = |e: String| {
        metrics.store_errors.inc();
        error(StatusCode::INTERNAL_SERVER_ERROR, e)
    };
    // What an earlier, cut transfer of this shard left is kept and
    // re-hashed; the sender skips it only if its own first bytes hash the
    // same (it asked `/ready` what is here), else it is thrown away.
    let store = s.custody.store.clone();
    let offset = headers
        .get(crate::transfer::H_OFFSET)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.parse::<u64>());
    // An upload from byte 0 needs nothing of what is there: not read.
    let from_start = matches!(offset, None | Some(Ok(0)));
    let mut writer = match tokio::task::block_in_place(|| {
        if from_start {
            store.receive_anew(&hash, Some(meta))
        } else {
            store.resume(&hash, Some(meta))
        }
    }) {
        Ok(w) => w,
        Err(StoreError::Busy(_)) => {
            let busy = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "another upload of this shard is under way",
            );
            return answer_early(body, busy).await;
        }
        Err(e) => return store_failed(e.to_string()),
    };
    let prefix = headers
        .get(crate::transfer::H_HAVE_BLAKE3)
        .and_then(|v| v.to_str().ok());
    match offset {
        None | Some(Ok(0)) => {}
        Some(Ok(at)) if at == writer.written() && prefix == Some(writer.prefix_hash().as_str()) => {
            metrics.transfer_resumed_bytes.inc_by(at);
        }
        Some(Ok(at)) => {
            let refusal = TransferError::ResumeMismatch(format!(
                "the upload goes on at byte {at}, but this node has {} bytes hashing to {}; ask again",
                writer.written(),
                writer.prefix_hash()
            ))
            .into_response();
            return answer_early(body, refusal).await;
        }
        Some(Err(_)) => {
            let refusal = TransferError::BadRequest(format!(
                "{} is not a byte count",
                crate::transfer::H_OFFSET
            ))
            .into_response();
            return answer_early(body, refusal).await;
        }
    }
    if let Some(len) = declared.filter(|len| writer.written() + *len > shard_size) {
        let what = format!(
            "the body is {len} bytes after the {} held",
            writer.written()
        );
        return answer_early(body, too_large(what)).await;
    }
    let skipped = writer.written();
    let mut stream = body.into_data_stream();
    let mut stopping = s.shutdown.subscribe();
    loop {
        // A stopping daemon cuts uploads short; what arrived stays for the
        // sender to resume from.
        let chunk = tokio::select! {
            c = stream.next() => c,
            _ = stopping.wait_for(|s| *s) => {
                return error(StatusCode::SERVICE_UNAVAILABLE, "the node is stopping");
            }
        };
        let Some(chunk) = chunk else { break };
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return TransferError::BadRequest(format!("body: {e}")).into_response(),
        };
        if writer.written() + chunk.len() as u64 > shard_size {
            // Cut off at once, keeping nothing of it.
            writer.discard();
            let refusal = too_large(format!("the body passed {shard_size} bytes"));
            return drain(stream, refusal).await;
        }
        if let Err(e) = writer.write_chunk(&chunk) {
            return store_failed(e.to_string());
        }
    }
    let provisional = grant.provisional.as_ref().map(|r| &r.provisional);
    match tokio::task::block_in_place(|| writer.finish_as(provisional)) {
        Ok(rec) => {
            metrics.moved("in", rec.size - skipped);
            if provisional.is_some() {
                // Held for now: its assignment is still on its way here.
                metrics.shards_taken_early.inc();
                return (StatusCode::ACCEPTED, Json(rec)).into_response();
            }
            (StatusCode::CREATED, Json(rec)).into_response()
        }
        Err(StoreError::HashMismatch { expected, actual }) => TransferError::HashMismatch(format!(
            "the body hashes to {actual}, not {expected}; nothing was stored"
        ))
        .into_response(),
        Err(e) => store_failed(e.to_string()),
    }
}

/// How much of an upload is read and thrown away when it is answered
/// before its body is used (a refusal, or a shard already held).
const EARLY_ANSWER_DRAIN_BYTES: usize = 16 * 1024 * 1024;
/// How long an upload answered early may take to finish sending.
const EARLY_ANSWER_DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Sends `response` after reading what is left of the request body, up to a
/// size and time limit. Closing a connection the client is still writing to
/// resets it, and the client then sees "broken pipe" instead of why it was
/// refused; past the limits a sender is cut off anyway.
async fn answer_early(body: Body, response: Response) -> Response {
    drain(body.into_data_stream(), response).await
}

/// [`answer_early`] for a body already being read.
async fn drain(mut stream: axum::body::BodyDataStream, response: Response) -> Response {
    use futures_util::StreamExt;
    let mut read = 0usize;
    let _ = tokio::time::timeout(EARLY_ANSWER_DRAIN_TIME, async {
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len();
            if read > EARLY_ANSWER_DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
    response
}

/// The query of `GET /shards/{hash}/ready`.
#[derive(Debug, Deserialize)]
struct ReadyQuery {
    /// The assignment's entry hash.
    assignment: String,
}

/// `204` once this node would take the shard under the assignment (after
/// waiting a little for the assignment to arrive), else the refusal a
/// `PUT` would get: `503` not yet, `403`, `507`.
async fn shard_ready(
    State(s): State<AppState>,
    UrlPath(hash): UrlPath<String>,
    axum::extract::Query(q): axum::extract::Query<ReadyQuery>,
) -> Response {
    if let Err(e) = s.custody.ready_for(&hash, &q.assignment).await {
        return e.into_response();
    }
    // What a cut upload left here, for the sender to go on from.
    let store = s.custody.store.clone();
    let mut ready = StatusCode::NO_CONTENT.into_response();
    match tokio::task::spawn_blocking(move || store.have(&hash)).await {
        Ok(Ok(Some((have, prefix)))) => {
            let h = ready.headers_mut();
            h.insert(crate::transfer::H_HAVE, have.into());
            if let Ok(v) = prefix.parse() {
                h.insert(crate::transfer::H_HAVE_BLAKE3, v);
            }
        }
        Ok(Ok(None)) => {}
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
    ready
}

async fn get_shard(
    State(s): State<AppState>,
    UrlPath(hash): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let auth = match TransferAuth::from_headers(&headers) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let recovery = headers
        .get(crate::transfer::H_RECOVERY)
        .and_then(|v| v.to_str().ok());
    let held = match s.custody.authorize_get(&auth, &hash, recovery).await {
        Ok(h) => h,
        Err(e) => return e.into_response(),
    };
    // A download cut earlier asks for the rest (`Range: bytes=N-`) with the
    // hash of the N bytes it has; it gets the rest only if this node's
    // first N bytes hash the same, else the whole shard again.
    let range_from = headers
        .get(axum::http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.strip_suffix('-'))
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|n| *n > 0 && *n <= held.size);
    let their_prefix = headers
        .get(crate::transfer::H_HAVE_BLAKE3)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let metrics = s.custody.agent.metrics.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let (start_tx, start_rx) = tokio::sync::oneshot::channel::<Result<u64, String>>();
    let store = s.custody.store.clone();
    // Serving is paced to what the node offers, shared with its rebuilds.
    let pace = s.custody.bandwidth.clone();
    let size = held.size;
    let task_hash = hash.clone();
    let custody = s.custody.clone();
    let receiver = auth.agent.clone();
    tokio::task::spawn_blocking(move || {
        let hash = task_hash;
        let mut reader = match store.open_verified(&hash) {
            Ok(r) => r,
            Err(e) => {
                metrics.store_errors.inc();
                let _ = start_tx.send(Err(e.to_string()));
                return;
            }
        };
        // The skipped bytes are read too: the whole shard is still checked
        // against its name on the way.
        let start = match (range_from, their_prefix) {
            (Some(n), Some(theirs)) => match reader.skip(n) {
                Ok(()) if reader.prefix_hash() == theirs => n,
                Ok(()) => {
                    drop(reader);
                    match store.open_verified(&hash) {
                        Ok(r) => reader = r,
                        Err(e) => {
                            let _ = start_tx.send(Err(e.to_string()));
                            return;
                        }
                    }
                    0
                }
                Err(e) => {
                    metrics.store_errors.inc();
                    let _ = start_tx.send(Err(e.to_string()));
                    return;
                }
            },
            _ => 0,
        };
        if start_tx.send(Ok(start)).is_err() {
            return;
        }
        let mut buf = vec![0u8; 256 * 1024];
        let mut sent = 0u64;
        loop {
            match reader.read(&mut buf) {
                Ok(0) => {
                    // Served whole (and checked): summed into the
                    // receiver's service summary (one record per receiver
                    // per period, never one per request), as the receiver
                    // sums what it got whole. A cut transfer claims nothing;
                    // the one that resumes it claims what it sends.
                    custody.note_served(&receiver, &hash, sent);
                    custody.agent.metrics.moved("out", sent);
                    return;
                }
                Ok(n) => {
                    pace.spend_blocking(n as u64);
                    if tx
                        .blocking_send(Ok(bytes::Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        custody.agent.metrics.moved("out", sent);
                        return;
                    }
                    sent += n as u64;
                }
                Err(e) => {
                    // A corrupt shard: the reader quarantined it; the
                    // receiver sees a broken body and its hash check fails.
                    metrics.store_errors.inc();
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let start = match start_rx.await {
        Ok(Ok(start)) => start,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(_) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the shard reader stopped",
            )
        }
    };
    if start > 0 {
        s.custody.agent.metrics.transfer_resumed_bytes.inc_by(start);
    }
    let mut response = Body::from_stream(tokio_stream_from(rx)).into_response();
    let h = response.headers_mut();
    h.insert(axum::http::header::CONTENT_LENGTH, (size - start).into());
    if start > 0 {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = format!("bytes {start}-{}/{size}", size - 1).parse() {
            response
                .headers_mut()
                .insert(axum::http::header::CONTENT_RANGE, v);
        }
    }
    response
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Runs `work` in the background, streaming its progress and outcome as
/// NDJSON lines.
fn ndjson<T, F>(work: F) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce(
            Box<dyn Fn(Progress) + Send + Sync>,
        ) -> futures_util::future::BoxFuture<'static, Result<T, String>>
        + Send
        + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let line = |l: &StreamLine<T>| serde_json::to_string(l).unwrap_or_default() + "\n";
    let progress_tx = tx.clone();
    let last = std::sync::Mutex::new((String::new(), std::time::Instant::now()));
    let progress: Box<dyn Fn(Progress) + Send + Sync> = Box::new(move |p: Progress| {
        // At most ~10 lines a second per phase, and always the last one.
        let mut l = last.lock().unwrap();
        if l.0 != p.phase || l.1.elapsed().as_millis() >= 100 || p.done >= p.total {
            *l = (p.phase.clone(), std::time::Instant::now());
            let _ = progress_tx.send(
                serde_json::to_string(&StreamLine::<()>::Progress(p)).unwrap_or_default() + "\n",
            );
        }
    });
    tokio::spawn(async move {
        let outcome = work(progress).await;
        let _ = tx.send(match outcome {
            Ok(v) => line(&StreamLine::Result(v)),
            Err(e) => line(&StreamLine::<T>::Error(e)),
        });
    });
    let mut rx = rx;
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(Ok::<_, std::io::Error>))
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn publish(
    State(s): State<AppState>,
    body: Result<Json<PublishRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return bad_json(e),
    };
    if let Err(e) = req.check() {
        return e.into_response();
    }
    let custody = s.custody.clone();
    ndjson(move |progress| {
        Box::pin(async move {
            custody
                .publish(req, &*progress)
                .await
                .map_err(|e| e.to_string())
        })
    })
}

async fn fetch(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
    body: Result<Json<FetchRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return bad_json(e),
    };
    if let Err(e) = crate::ids::check_content_id(&id) {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    let custody = s.custody.clone();
    ndjson(move |progress| {
        Box::pin(async move {
            custody
                .retrieve(&id, &req.out, &*progress)
                .await
                .map_err(|e| e.to_string())
        })
    })
}

async fn custody(State(s): State<AppState>) -> Response {
    match (s.custody.store.list(), s.custody.catalog.list()) {
        (Ok(held), Ok(published)) => {
            let published: Vec<serde_json::Value> = published
                .into_iter()
                .map(|mut p| {
                    p.key_hex = None;
                    serde_json::to_value(p).unwrap_or_default()
                })
                .collect();
            Json(serde_json::json!({ "held": held, "published": published })).into_response()
        }
        (Err(e), _) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        (_, Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn reconcile(State(s): State<AppState>) -> Response {
    match s.custody.reconcile().await {
        Ok(r) => Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Body of `POST /api/recovery/initiate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitiateRequest {
    /// The lost node's agent key.
    pub agent_id: String,
}

/// Body of `POST /api/recovery/approve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApproveRequest {
    /// The session (request) to approve.
    pub session_id: String,
    /// False to refuse; approving is the default.
    #[serde(default = "yes")]
    pub approve: bool,
}

fn yes() -> bool {
    true
}

/// Body of `POST /api/recovery/sync`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The verified session.
    pub session_id: String,
    /// The lost person's recovery code (content keys derive from it).
    pub recovery_code: String,
}

impl IntoResponse for RecoveryError {
    fn into_response(self) -> Response {
        let status = match &self {
            RecoveryError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RecoveryError::NodeOnline { .. } | RecoveryError::Precondition(_) => {
                StatusCode::CONFLICT
            }
            RecoveryError::NoFamilyCustodians => {
                return (
                    StatusCode::NOT_FOUND,
                    Json(serde_json::json!({
                        "error": self.to_string(),
                        "suggestion": "Set up family relationships with custody enabled \
                            (both people consent, auto_custody_enabled) before a node is lost. \
                            A node that joined minutes ago may not have the network's records \
                            yet: if the family exists, try again shortly",
                    })),
                )
                    .into_response()
            }
            RecoveryError::Forbidden(_) => StatusCode::FORBIDDEN,
            RecoveryError::UnknownSession(_) => StatusCode::NOT_FOUND,
            RecoveryError::NotVerified { approved, required } => {
                return (
                    StatusCode::FORBIDDEN,
                    Json(serde_json::json!({
                        "error": self.to_string(),
                        "approved": approved,
                        "required": required,
                    })),
                )
                    .into_response()
            }
            RecoveryError::Conductor(_) => StatusCode::BAD_GATEWAY,
            RecoveryError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error(status, self.to_string())
    }
}

fn bad_json(e: axum::extract::rejection::JsonRejection) -> Response {
    error(StatusCode::BAD_REQUEST, e.body_text())
}

async fn recovery_initiate(
    State(s): State<AppState>,
    body: Result<Json<InitiateRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return bad_json(e),
    };
    match s.recovery.initiate(&req.agent_id).await {
        Ok((r, true)) => (StatusCode::CREATED, Json(r)).into_response(),
        Ok((r, false)) => Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn recovery_approve(
    State(s): State<AppState>,
    body: Result<Json<ApproveRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return bad_json(e),
    };
    match s.recovery.approve(&req.session_id, req.approve).await {
        Ok(h) => (
            StatusCode::CREATED,
            Json(serde_json::json!({ "approval": h, "approve": req.approve })),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn recovery_sync(
    State(s): State<AppState>,
    body: Result<Json<SyncRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return bad_json(e),
    };
    match s.recovery.sync(&req.session_id, &req.recovery_code).await {
        Ok(session) => (StatusCode::ACCEPTED, Json(session)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn recovery_report(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> Response {
    match s.recovery.report(&id).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}
