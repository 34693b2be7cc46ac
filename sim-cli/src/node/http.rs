//! The HTTP/JSON API (`node --http ADDR`), on the node's own runtime:
//! the map by key, a listing by prefix, watches, the members, the status,
//! a readiness check, Prometheus metrics and a status page (`GET /`). docs/http-api.md documents
//! every route.
//!
//! Values are the raw request and response bodies (UTF-8); a write's stamp
//! travels in the `x-gossip-kv-stamp` header, or in the body with
//! `?format=json`. Every error is JSON, `{"code": ..., "message": ...}`,
//! with a stable `code` and the status that fits it. A request body over
//! the node's `--max-message-bytes` is refused (413), more than
//! [`MAX_CONCURRENT`] requests at once are refused (503, `Retry-After`),
//! and a request that takes longer than [`REQUEST_TIMEOUT`] is cut off
//! (503), so one client cannot take memory without bound or hold the node.
//!
//! Plain HTTP on a loopback address; on any other, HTTPS (TLS 1.3) with
//! the node's certificate, and every client must present a client
//! certificate of the cluster (`serve_tls`). Over HTTPS the client's
//! certificate names it and its role: a client with role `read` gets 403
//! `forbidden` for a write. Plain HTTP on loopback has no certificate: it
//! is not authenticated, and takes writes as before (audited as client
//! `-`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gossip::{NodeHandle, WriteError};
use lww_crdt::{Entry, Stamp};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::client::proto::ProtoError;
use crate::node::audit::{self, Caller};
use crate::node::prometheus::RequestMetrics;
use crate::node::serve::{self, Server};
use crate::node::{listing, watch};

/// Requests served at once; past that, 503 with `Retry-After`.
pub const MAX_CONCURRENT: usize = 64;

/// The longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The most keys one listing returns, and its default.
pub const MAX_LIST: usize = 1_000;
const DEFAULT_LIST: usize = 100;

/// The header carrying a write's stamp: `HLC/ORIGIN`, the stamp's hybrid
/// logical clock and its writer origin as decimal integers.
pub const STAMP_HEADER: &str = "x-gossip-kv-stamp";

#[derive(Clone)]
struct Api {
    node: NodeHandle,
    server: Arc<Server>,
    slots: Arc<Semaphore>,
    requests: RequestMetrics,
}

/// The routes, with their limits, for a node and its status.
pub(crate) fn router(server: Arc<Server>, max_body: usize) -> Router {
    let api = Api {
        node: server.node.clone(),
        server,
        slots: Arc::new(Semaphore::new(MAX_CONCURRENT)),
        requests: RequestMetrics::new(),
    };
    Router::new()
        .route("/v1/kv", get(list))
        .route("/v1/kv/{*key}", get(read).put(write).delete(delete))
        .route("/v1/members", get(members))
        .route("/v1/status", get(status))
        .route("/v1/health", get(health))
        .route("/metrics", get(metrics))
        .route("/", get(page))
        .route_layer(middleware::from_fn_with_state(api.clone(), observe))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such route") })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(api.clone(), limits))
        // Outside the request slots and the time limit: a watch stays open.
        .route("/v1/watch", get(watch))
        .with_state(api)
}

/// Counts every request to a route, with its latency.
async fn observe(State(api): State<Api>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let start = std::time::Instant::now();
    let response = next.run(request).await;
    api.requests.observe(
        &route,
        &method,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /`: one self-contained page (no framework, no build step) showing
/// the members, the map and recent exchanges, refreshed every second from
/// `/v1/status`.
async fn page() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        include_str!("assets/status.html"),
    )
        .into_response()
}

/// `GET /metrics`: the Prometheus text format.
async fn metrics(State(api): State<Api>) -> Response {
    let page = crate::node::prometheus::render(&api.server.status(), &api.requests);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        page,
    )
        .into_response()
}

/// A request slot and the time limit, around every route.
async fn limits(State(api): State<Api>, request: Request, next: Next) -> Response {
    let Ok(_slot) = api.slots.try_acquire() else {
        let mut response = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("{MAX_CONCURRENT} requests are being served; retry"),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took over {} s", REQUEST_TIMEOUT.as_secs()),
        )
        .into_response(),
    }
}

/// An error as every route reports it.
#[derive(Debug, Serialize)]
struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(&self)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<WriteError> for ApiError {
    fn from(err: WriteError) -> ApiError {
        let (status, code) = match &err {
            WriteError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            WriteError::NotJoined => (StatusCode::SERVICE_UNAVAILABLE, "not_joined"),
            WriteError::StoreFull { .. } => (StatusCode::INSUFFICIENT_STORAGE, "store_full"),
            WriteError::Draining => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            WriteError::ClockOutOfRange { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "clock_out_of_range")
            }
            WriteError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage_failed"),
            WriteError::ClockExhausted { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "clock_exhausted")
            }
            WriteError::Expired { .. } => (StatusCode::SERVICE_UNAVAILABLE, "expired"),
        };
        ApiError::new(status, code, err.to_string())
    }
}

/// A stamp in JSON.
#[derive(Debug, Serialize)]
struct StampJson {
    hlc: u64,
    hlc_text: String,
    origin: u64,
    member: u64,
    incarnation: u64,
}

impl From<Stamp> for StampJson {
    fn from(stamp: Stamp) -> StampJson {
        StampJson {
            hlc: stamp.hlc.as_u64(),
            hlc_text: stamp.hlc.to_string(),
            origin: stamp.origin.get(),
            member: gossip::origin_member(stamp.origin).get(),
            incarnation: stamp.origin.get() >> 32,
        }
    }
}

fn stamp_header(stamp: Stamp) -> (HeaderName, HeaderValue) {
    let text = format!("{}/{}", stamp.hlc.as_u64(), stamp.origin.get());
    (
        HeaderName::from_static(STAMP_HEADER),
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("")),
    )
}

/// `?format=json`.
#[derive(Debug, Default, Deserialize)]
struct Format {
    format: Option<String>,
}

impl Format {
    fn json(&self) -> Result<bool, ApiError> {
        match self.format.as_deref() {
            None | Some("raw") => Ok(false),
            Some("json") => Ok(true),
            Some(other) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_format",
                format!("format={other}: use json or raw"),
            )),
        }
    }
}

async fn read(
    State(api): State<Api>,
    Path(key): Path<String>,
    Query(format): Query<Format>,
) -> Result<Response, ApiError> {
    let json = format.json()?;
    let entry: Option<Entry<String>> = api.node.get_entry(&key);
    let Some(entry) = entry else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{key:?} was never written, as far as this node knows"),
        ));
    };
    let Some(value) = entry.value else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "deleted",
            format!("{key:?} was deleted (stamp {})", entry.stamp.hlc),
        ));
    };
    let mut headers = HeaderMap::new();
    let (name, stamp) = stamp_header(entry.stamp);
    headers.insert(name, stamp);
    if json {
        #[derive(Serialize)]
        struct Read {
            key: String,
            value: String,
            stamp: StampJson,
        }
        let body = Read {
            key,
            value,
            stamp: entry.stamp.into(),
        };
        return Ok((headers, axum::Json(body)).into_response());
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok((headers, value).into_response())
}

/// The answer to a write.
fn written(stamp: Stamp) -> Response {
    #[derive(Serialize)]
    struct Written {
        stamp: StampJson,
    }
    let (name, value) = stamp_header(stamp);
    (
        [(name, value)],
        axum::Json(Written {
            stamp: stamp.into(),
        }),
    )
        .into_response()
}

/// Refuses a write from a caller whose role does not allow it (403).
fn allowed(caller: &Caller, op: &'static str, key: &str) -> Result<(), ApiError> {
    serve::forbidden(caller, op, key).map_err(|refused: ProtoError| {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", refused.to_string())
    })
}

async fn write(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    allowed(&caller, "put", &key)?;
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "bad_body"
        };
        ApiError::new(status, code, rejection.body_text())
    })?;
    let value = String::from_utf8(body.to_vec()).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "not_utf8",
            "values are UTF-8 text; the body is not",
        )
    })?;
    let node = api.node.clone();
    // A write may wait for the disk (`--sync always`): off the I/O thread.
    let written_key = key.clone();
    let stamp = tokio::task::spawn_blocking(move || node.put(written_key, value))
        .await
        .map_err(|_| internal("the write task failed"))??;
    audit::write_taken(&caller, "put", &key, &stamp);
    Ok(written(stamp))
}

async fn delete(
    State(api): State<Api>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    allowed(&caller, "delete", &key)?;
    let node = api.node.clone();
    let deleted_key = key.clone();
    let stamp = tokio::task::spawn_blocking(move || node.delete(deleted_key))
        .await
        .map_err(|_| internal("the delete task failed"))??;
    audit::write_taken(&caller, "delete", &key, &stamp);
    Ok(written(stamp))
}

fn internal(message: &str) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
}

/// `GET /v1/kv?prefix=P&limit=N&after=K`.
#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(default)]
    prefix: String,
    limit: Option<usize>,
    after: Option<String>,
}

async fn list(
    State(api): State<Api>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_query", rejection.body_text())
    })?;
    let limit = query.limit.unwrap_or(DEFAULT_LIST);
    if limit == 0 || limit > MAX_LIST {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_limit",
            format!("limit={limit}: give 1 to {MAX_LIST}"),
        ));
    }
    #[derive(Serialize)]
    struct Item {
        key: String,
        value: String,
    }
    #[derive(Serialize)]
    struct Page {
        keys: Vec<Item>,
        /// Pass as `after` for the next page; absent on the last.
        #[serde(skip_serializing_if = "Option::is_none")]
        next_after: Option<String>,
    }
    let page = listing::list(
        &api.node,
        &query.prefix,
        query.after.as_deref(),
        limit,
        listing::PAGE_BYTES,
    );
    let keys = page
        .keys
        .into_iter()
        .map(|(key, value)| Item { key, value })
        .collect();
    let next_after = page.next_after;
    Ok(axum::Json(Page { keys, next_after }).into_response())
}

async fn members(State(api): State<Api>) -> Response {
    axum::Json(api.server.status().members).into_response()
}

async fn status(State(api): State<Api>) -> Response {
    axum::Json(api.server.status()).into_response()
}

/// Ready once the node takes writes and has completed an exchange with a
/// peer since it started (or knows no peer, founding a cluster alone),
/// and while it is not shutting down.
async fn health(State(api): State<Api>) -> Response {
    #[derive(Serialize)]
    struct Health {
        ready: bool,
        joined: bool,
        draining: bool,
        exchanges_completed: u64,
        peers: usize,
    }
    let health = api.node.with_node(|node| Health {
        ready: false,
        joined: node.is_joined(),
        draining: node.is_draining(),
        exchanges_completed: node.metrics().exchanges_completed,
        peers: node.peers().len(),
    });
    let ready =
        health.joined && !health.draining && (health.exchanges_completed > 0 || health.peers == 0);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(Health { ready, ..health })).into_response()
}

/// `GET /v1/watch?prefix=P`.
#[derive(Debug, Default, Deserialize)]
struct WatchQuery {
    #[serde(default)]
    prefix: String,
}

/// `GET /v1/watch?prefix=P`: Server-Sent Events, one per change to a key
/// under the prefix applied on this node from now on: event `put` or
/// `delete`, data `{"key", "value", "stamp", "origin", "from"}`, where
/// `from` is `"local"` for a write on this node or the peer's id. A reader
/// that falls behind by more than [`WATCH_BACKLOG`](watch::WATCH_BACKLOG)
/// batches gets a `lagged` event saying how many batches it missed.
async fn watch(
    State(api): State<Api>,
    Query(query): Query<WatchQuery>,
) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};

    let Ok(watch) = api.server.feed.subscribe(query.prefix) else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("{} watches are open; retry", watch::MAX_WATCHES),
        ));
    };
    let stream = futures_util::stream::unfold(watch, |mut watch| async move {
        let event = match watch.next().await? {
            watch::WatchItem::Changed(changed) => watch_event(&changed),
            watch::WatchItem::Missed(missed) => {
                Event::default().event("lagged").data(missed.to_string())
            }
        };
        Some((Ok::<Event, std::convert::Infallible>(event), watch))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The event for one change.
fn watch_event(changed: &crate::client::proto::Changed) -> axum::response::sse::Event {
    #[derive(Serialize)]
    struct Changed<'a> {
        key: &'a str,
        value: Option<&'a str>,
        stamp: StampJson,
        origin: u64,
        from: String,
    }
    let entry = &changed.entry;
    let json = Changed {
        key: &changed.key,
        value: entry.value.as_deref(),
        stamp: entry.stamp.into(),
        origin: gossip::origin_member(entry.stamp.origin).get(),
        from: changed
            .from
            .map_or_else(|| "local".to_owned(), |peer| peer.get().to_string()),
    };
    let kind = if entry.value.is_some() {
        "put"
    } else {
        "delete"
    };
    // Serializing these plain fields cannot fail; should it, the event
    // still says which kind of change it was.
    axum::response::sse::Event::default()
        .event(kind)
        .json_data(&json)
        .unwrap_or_else(|_| axum::response::sse::Event::default().event(kind))
}

/// How long a TLS client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client has to send a request's head once it started one (or
/// opened the connection): a client trickling its headers byte by byte
/// holds a connection no longer than this.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the API on `listener` until `stop` changes: plain HTTP, or over
/// TLS with `tls`. With TLS every client must present a client
/// certificate of the cluster (`sim-cli certs` issues `client.pem` and
/// `client-NAME.pem`), which names the client and its role for the
/// requests on that connection; a node's certificate, another CA's, a
/// revoked one or none is refused at the handshake, and logged.
/// Connections open when `stop` changes are cut when the node's runtime
/// stops.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    revoked: transport_quic::DenyList,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (tcp, from) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
            _ = stop.changed() => return,
        };
        let (acceptor, app, revoked) = (acceptor.clone(), app.clone(), revoked.clone());
        tokio::spawn(async move {
            let Some(acceptor) = acceptor else {
                let app = app.layer(Extension(Caller::Loopback));
                return serve_connection(hyper_util::rt::TokioIo::new(tcp), app).await;
            };
            let refused = |why: &str| {
                tracing::warn!(target: crate::node::LOG_TARGET, from = %from, why, "HTTPS client refused");
            };
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) => return refused(&err.to_string()),
                Err(_) => return refused("the TLS handshake took too long"),
            };
            let leaf = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .cloned();
            let Some(client) = leaf.as_ref().and_then(transport_quic::tls::client_identity) else {
                return refused("its certificate is not a client certificate of this cluster");
            };
            let serial = leaf.as_ref().and_then(transport_quic::Serial::of);
            let app = app.layer(Extension(Caller::Client {
                client: client.clone(),
                via: "https",
            }));
            let connection = serve_connection(hyper_util::rt::TokioIo::new(tls), app);
            tokio::pin!(connection);
            // A certificate revoked while its connection is open: cut it.
            loop {
                // Waiting from before the check: a replace after it is not
                // missed.
                let replaced = revoked.replaced();
                if serial
                    .as_ref()
                    .is_some_and(|serial| revoked.contains(serial))
                {
                    tracing::warn!(target: crate::node::LOG_TARGET, from = %from, client = %client,
                        "closed the HTTPS connection of a client whose certificate was revoked");
                    return;
                }
                tokio::select! {
                    () = &mut connection => return,
                    () = replaced => {}
                }
            }
        });
    }
}

/// Serves HTTP/1.1 requests on one connection until the client closes it,
/// or takes longer than [`HEADER_READ_TIMEOUT`] to send a request's head.
async fn serve_connection<I>(io: I, app: Router)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(io, service)
        .await;
}

/// Whether `addr` may serve plain HTTP: loopback only; any other address
/// serves HTTPS with client certificates.
pub(crate) fn plain_allowed(addr: SocketAddr) -> bool {
    addr.ip().is_loopback()
}
