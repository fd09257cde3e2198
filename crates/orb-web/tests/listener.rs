//! The public listener over real TCP on 127.0.0.1: header-read timeout (slowloris), whole-request
//! timeout, connection limit, the sender's address. Assertions are about what the server does (closes,
//! answers, does not answer yet), never about elapsed time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use orb_web::{ListenerLimits, serve_public};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// A served test router; the listener stops when this is dropped.
struct Served {
    addr: SocketAddr,
    served: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(limits: ListenerLimits) -> Served {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let app = Router::new()
        .route(
            "/hello",
            get(move |ConnectInfo(remote): ConnectInfo<SocketAddr>| {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                async move { format!("hello {} #{n}", remote.ip()) }
            }),
        )
        .route("/echo", post(|body: Bytes| async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve_public(listener, app, limits, stop.clone()));
    Served { addr, served, stop }
}

fn limits(header_read: Duration, request: Duration, max_connections: u32) -> ListenerLimits {
    ListenerLimits { header_read_timeout: header_read, request_timeout: request, max_connections }
}

const GET_HELLO: &[u8] = b"GET /hello HTTP/1.1\r\nHost: orb\r\n\r\n";

/// Reads one response with a body of `Content-Length` bytes, leaving the connection open.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before a full response: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

/// Reads until the server closes the connection; what it sent, if anything.
async fn read_until_closed(stream: &mut tokio::net::tcp::OwnedReadHalf) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return buf,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_connection_is_closed_at_the_header_read_timeout() {
    let server = serve(limits(Duration::from_millis(300), Duration::from_secs(30), 16)).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // Headers that never end, one byte every 20 ms: each byte is progress, yet the deadline holds.
    let dribble = tokio::spawn(async move {
        let head = b"POST /echo HTTP/1.1\r\nHost: orb\r\n";
        let mut sent = 0_usize;
        for byte in head.iter().chain(b"X-Slow: ".iter()).chain(std::iter::repeat(&b'a')) {
            if writer.write_all(&[*byte]).await.is_err() {
                return sent;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            if sent > 3_000 {
                return sent; // a minute of dribbling: the server did not close
            }
        }
        sent
    });
    let answer = read_until_closed(&mut reader).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(!text.contains(" 200 "), "a request with unfinished headers was served: {text}");
    let sent = dribble.await.unwrap();
    assert!(sent < 3_000, "the server kept the dribbling connection open");
    assert_eq!(server.served.load(Ordering::SeqCst), 0);

    // The listener still serves well-behaved clients.
    let mut ok = TcpStream::connect(server.addr).await.unwrap();
    ok.write_all(GET_HELLO).await.unwrap();
    assert!(read_response(&mut ok).await.contains("hello 127.0.0.1 #1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_slower_than_the_request_timeout_is_answered_408_and_closed() {
    let server = serve(limits(Duration::from_secs(30), Duration::from_millis(300), 16)).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(b"POST /echo HTTP/1.1\r\nHost: orb\r\nContent-Length: 100000\r\n\r\n").await.unwrap();
    let dribble = tokio::spawn(async move {
        for sent in 0..100_000 {
            if writer.write_all(b"x").await.is_err() {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        100_000
    });
    let answer = read_until_closed(&mut reader).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
    dribble.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_beyond_the_limit_is_served_only_once_one_closes() {
    let server = serve(limits(Duration::from_secs(60), Duration::from_secs(30), 2)).await;
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    first.write_all(GET_HELLO).await.unwrap();
    assert!(read_response(&mut first).await.contains("#1"));
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    second.write_all(GET_HELLO).await.unwrap();
    assert!(read_response(&mut second).await.contains("#2"));

    // Both permits are held by open keep-alive connections: the third waits in the backlog.
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third.write_all(GET_HELLO).await.unwrap();
    // The server is not stuck: the first connection is served again, after the third sent its request.
    first.write_all(GET_HELLO).await.unwrap();
    assert!(read_response(&mut first).await.contains("#3"));
    let mut probe = [0_u8; 64];
    match third.try_read(&mut probe) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the connection beyond the limit was answered: {other:?}"),
    }
    assert_eq!(server.served.load(Ordering::SeqCst), 3, "the third request was not handled");

    // One closes: the third is accepted and served.
    drop(first);
    let answer = read_response(&mut third).await;
    assert!(answer.contains("hello 127.0.0.1 #4"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_and_returns_once_connections_end() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/hello", get(|| async { "hello" }));
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve_public(listener, app, ListenerLimits::default(), stop.clone()));
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(GET_HELLO).await.unwrap();
    assert!(read_response(&mut idle).await.ends_with("hello"));
    stop.cancel();
    // The idle keep-alive connection is closed by the graceful stop, and serve_public returns.
    let mut rest = Vec::new();
    assert_eq!(idle.read_to_end(&mut rest).await.unwrap(), 0);
    server.await.unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "no longer listening");
}
