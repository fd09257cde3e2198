//! A tenant in the Graph emulator, served on 127.0.0.1:0, and ORB's client pointed at it.
#![allow(dead_code, missing_docs)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use orb_core::{CorrelationId, EmailAddress, FixedClock};
use orb_emulators::graph::{GraphEmulator, RoomInfo, Served, serve};
use orb_graph::model::{Attendee, DateTimeTimeZone, Event, Location};
use orb_graph::{AppRegistration, ClientOptions, Credential, Endpoints, GraphClient};
use secrecy::SecretString;

pub const TENANT: &str = "7d2a5c1e-0b9f-4c1a-9f77-3e1f2a4b5c6d";
pub const CLIENT_ID: &str = "0f3b6a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
pub const SECRET: &str = "emulator-secret-value";

pub struct World {
    pub em: GraphEmulator,
    pub served: Served,
    pub clock: FixedClock,
}

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("test instant").with_timezone(&Utc)
}

pub fn addr(text: &str) -> EmailAddress {
    EmailAddress::parse(text).expect("test address")
}

pub fn corr() -> CorrelationId {
    CorrelationId::generate(at("2026-09-01T06:00:00Z"))
}

impl World {
    pub async fn start() -> Self {
        let clock = FixedClock::new(at("2026-09-01T06:00:00Z"));
        let em = GraphEmulator::new(Arc::new(clock.clone()));
        em.add_app_secret(TENANT, CLIENT_ID, SECRET);
        em.add_user(TENANT, "anna@contoso.com", "Anna Bakker");
        em.add_user(TENANT, "bob@contoso.com", "Bob de Vries");
        em.add_room(
            TENANT,
            "room1@contoso.com",
            "Room 1",
            RoomInfo { capacity: Some(8), ..RoomInfo::default() },
        );
        em.add_room(TENANT, "room2@contoso.com", "Room 2", RoomInfo::default());
        let served = serve(em.clone()).await.expect("emulator serves");
        Self { em, served, clock }
    }

    pub fn app(&self, credential: Credential) -> AppRegistration {
        AppRegistration {
            tenant: TENANT.to_owned(),
            client_id: CLIENT_ID.to_owned(),
            credential: Arc::new(credential),
        }
    }

    pub fn client_with(&self, credential: Credential, options: ClientOptions) -> GraphClient {
        let endpoints = Endpoints::from_root(&self.served.base_url).expect("base URL");
        GraphClient::new(endpoints, self.app(credential), Arc::new(self.clock.clone()), options)
            .expect("client")
    }

    pub fn client(&self) -> GraphClient {
        self.client_with(Credential::Secret(SecretString::from(SECRET)), ClientOptions::default())
    }
}

/// A meeting in `room` from `start` to `end` (UTC wall-clock text).
pub fn meeting(subject: &str, room: &str, start: &str, end: &str) -> Event {
    Event {
        subject: Some(subject.to_owned()),
        start: Some(DateTimeTimeZone { date_time: start.to_owned(), time_zone: Some("UTC".to_owned()) }),
        end: Some(DateTimeTimeZone { date_time: end.to_owned(), time_zone: Some("UTC".to_owned()) }),
        location: Some(Location::room(room, room)),
        attendees: Some(vec![Attendee::resource(room, None)]),
        ..Event::default()
    }
}

/// A self-signed RSA certificate (DER) and its PKCS#8 private key (DER).
pub fn certificate() -> (Vec<u8>, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let cert = rcgen::CertificateParams::new(vec!["orb.test".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("self-signed");
    (cert.der().to_vec(), key.serialize_der())
}

/// How the stand-in webhook answers Graph's validation handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// 200, text/plain, the decoded token (what ORB's intake does).
    Echo,
    /// 200 with some other text.
    WrongBody,
    /// 200 with the token still URL-encoded.
    EchoEncoded,
    /// 500.
    Fail,
    /// Echo, but only after this many milliseconds.
    Slow(u64),
}

/// One POST the stand-in webhook received (not handshakes).
#[derive(Clone)]
pub struct Received {
    /// `/notify` or `/lifecycle`.
    pub path: String,
    /// The raw body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.path, String::from_utf8_lossy(&self.body))
    }
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON notification body")
    }
}

/// A tiny axum app on 127.0.0.1:0 standing in for ORB's webhook intake: it answers the handshake with
/// orb-graph's `validation_token` and collects notification POSTs (202).
pub struct Receiver {
    pub base: String,
    pub mode: Arc<std::sync::Mutex<Handshake>>,
    pub received: Arc<std::sync::Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct ReceiverState {
    mode: Arc<std::sync::Mutex<Handshake>>,
    received: Arc<std::sync::Mutex<Vec<Received>>>,
}

async fn hook(
    axum::extract::State(state): axum::extract::State<ReceiverState>,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let text = |s: String| ([(header::CONTENT_TYPE, "text/plain")], s).into_response();
    if let Some(token) = orb_graph::notifications::validation_token(uri.query()) {
        let mode = *state.mode.lock().unwrap();
        return match mode {
            Handshake::Echo => text(token),
            Handshake::WrongBody => text("hello".to_owned()),
            Handshake::EchoEncoded => {
                let raw = uri.query().unwrap_or_default();
                text(raw.split_once('=').map(|(_, v)| v.to_owned()).unwrap_or_default())
            }
            Handshake::Fail => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            Handshake::Slow(ms) => {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                text(token)
            }
        };
    }
    state.received.lock().unwrap().push(Received { path: uri.path().to_owned(), body: body.to_vec() });
    StatusCode::ACCEPTED.into_response()
}

impl Receiver {
    pub async fn start() -> Self {
        let mode = Arc::new(std::sync::Mutex::new(Handshake::Echo));
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let state = ReceiverState { mode: mode.clone(), received: received.clone() };
        let app = axum::Router::new()
            .route("/notify", axum::routing::post(hook))
            .route("/lifecycle", axum::routing::post(hook))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("receiver binds");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, mode, received, task }
    }

    pub fn notify_url(&self) -> url::Url {
        url::Url::parse(&format!("{}/notify?tenant=contoso", self.base)).unwrap()
    }

    pub fn lifecycle_url(&self) -> url::Url {
        url::Url::parse(&format!("{}/lifecycle", self.base)).unwrap()
    }

    pub fn set(&self, mode: Handshake) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (bounded) until at least `n` POSTs arrived at `path`; returns those.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Received> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let got: Vec<Received> = self.all().into_iter().filter(|r| r.path == path).collect();
            if got.len() >= n {
                return got;
            }
            assert!(std::time::Instant::now() < deadline, "waited 10 s for {n} POSTs at {path}, got {got:?}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
