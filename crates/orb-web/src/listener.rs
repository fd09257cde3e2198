//! The public listener: an HTTP/1.1 accept loop that a slow or greedy client cannot hold open.
//!
//! `axum::serve` has no header-read timeout, so ORB accepts connections itself and serves each with hyper's
//! HTTP/1.1 connection builder:
//! - **Connection limit.** A connection is accepted only with a permit of a semaphore of
//!   [`ListenerLimits::max_connections`]; the next one waits in the kernel's backlog until one closes.
//! - **Header-read timeout.** The request line and headers must arrive within
//!   [`ListenerLimits::header_read_timeout`] (a deadline, not an idle timer: sending byte by byte does not
//!   extend it), else hyper closes the connection. An idle keep-alive connection waiting for its next
//!   request is under the same deadline, so idle connections give their permit back.
//! - **Whole-request timeout.** Reading the body and handling the request must finish within
//!   [`ListenerLimits::request_timeout`], else the request is answered `408` and the connection closed (the
//!   handler is dropped: a store transaction it had open is rolled back, nothing half-kept).
//! - **Sender's address.** Every request carries `ConnectInfo<SocketAddr>` as an extension, as with
//!   `into_make_service_with_connect_info`, so the intake sees the remote address.
//! - **Graceful stop.** When the cancellation token fires, no new connection is accepted, idle connections
//!   close, requests in hand are finished (each within the request timeout), then [`serve_public`] returns.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// Default [`ListenerLimits::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`ListenerLimits::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`ListenerLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;
/// Pause after an accept error (e.g. too many open files) before accepting again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(200);

/// What the public listener allows one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Longest time from a connection's readiness for a request to the end of that request's headers.
    pub header_read_timeout: Duration,
    /// Longest time to read a request's body and answer it, from the end of its headers.
    pub request_timeout: Duration,
    /// Most connections served at once (at least 1); further ones wait to be accepted.
    pub max_connections: u32,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` is cancelled, then stops accepting and
/// returns once every open connection has finished. Errors of single connections are logged, not returned.
pub async fn serve_public(
    listener: TcpListener,
    router: Router,
    limits: ListenerLimits,
    shutdown: CancellationToken,
) {
    let max = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max as usize));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
        };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                let conn = Connection { builder: builder.clone(), router: router.clone(), limits, remote };
                tokio::spawn(conn.serve(stream, permit, shutdown.clone()));
            }
            Err(e) => {
                // Per-connection failures (reset before accept) and resource limits: keep serving.
                tracing::warn!(error = %e, "public listener: accepting a connection failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
    drop(listener);
    // Every connection holds a permit until it ends: all permits back means all connections done.
    let _ = permits.acquire_many(max).await;
}

struct Connection {
    builder: hyper::server::conn::http1::Builder,
    router: Router,
    limits: ListenerLimits,
    remote: SocketAddr,
}

impl Connection {
    async fn serve(self, stream: TcpStream, permit: OwnedSemaphorePermit, shutdown: CancellationToken) {
        let _permit = permit;
        let _ = stream.set_nodelay(true);
        let Self { builder, router, limits, remote } = self;
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            let router = router.clone();
            async move {
                let request = request.map(Body::new);
                match tokio::time::timeout(limits.request_timeout, router.oneshot(request)).await {
                    Ok(Ok(response)) => Ok::<_, Infallible>(response),
                    Ok(Err(never)) => match never {},
                    Err(_) => {
                        tracing::debug!(remote = %remote, "public listener: request timed out");
                        Ok(request_timeout())
                    }
                }
            }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let mut conn = std::pin::pin!(conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            () = shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            // Header-read timeouts, resets, malformed requests: the client's problem, not ORB's.
            tracing::debug!(remote = %remote, error = %e, "public listener: connection ended with an error");
        }
    }
}

/// `408` with `Connection: close`: the request took longer than the request timeout.
fn request_timeout() -> Response<Body> {
    let mut response = Response::new(Body::from("the request took too long; send it again faster\n"));
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
