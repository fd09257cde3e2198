//! Windows authentication as IIS answers it in front of EWS: NTLM bound to the TCP connection, with
//! Basic and bearer beside it.
//!
//! - A request without credentials on a connection not yet authenticated gets `401` with
//!   `WWW-Authenticate: Negotiate`, `WWW-Authenticate: NTLM` and `WWW-Authenticate: Basic realm=…` (only
//!   the Basic one when [`super::Knobs::ntlm_disabled`]).
//! - `Authorization: NTLM <NEGOTIATE>` gets `401` with `WWW-Authenticate: NTLM <CHALLENGE>`: a random
//!   server challenge, target info with `MsvAvNbDomainName`, `MsvAvNbComputerName`, the DNS names and
//!   `MsvAvTimestamp` (the injected clock). The challenge belongs to the connection that asked.
//! - `NTLM <AUTHENTICATE>` is checked against that connection's challenge (NTProofStr recomputed from the
//!   account's password with orb-ews' codec; NTLMv1 is refused): the connection is then authenticated
//!   and later requests on it need no header. An AUTHENTICATE on a connection that got no challenge
//!   (another connection's) is refused with `401`, like a wrong password.
//! - `Negotiate <token>` is accepted when the token is a raw NTLM message (what many clients send; the
//!   answer then comes as `Negotiate <CHALLENGE>`). SPNEGO and Kerberos are not emulated: such a token is
//!   refused with `401`.
//!
//! A connection is a [`ConnId`], given by [`super::serve`] to each accepted TCP connection (its peer
//! address and a serial number that is never reused, so a reused client port is a new connection).
//! The state of the last [`MAX_CONNECTIONS`] connections is kept.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;
use base64::Engine as _;
use orb_ews::ntlm;

use super::EwsEmulator;

/// How many connections' NTLM state is kept (the oldest is forgotten first).
pub const MAX_CONNECTIONS: usize = 4096;

/// The `Basic` challenge.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"exchange.emulator\"";

/// One accepted TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnId {
    /// The client's address.
    pub peer: SocketAddr,
    /// A number unique to this connection in the process.
    pub serial: u64,
}

static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for ConnId
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Self { peer: *stream.remote_addr(), serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed) }
    }
}

/// The NTLM state of the connections.
#[derive(Debug, Default)]
pub struct Conns {
    /// Server challenges sent, by connection serial.
    pending: BTreeMap<u64, [u8; 8]>,
    /// Authenticated connections and their account.
    authenticated: BTreeMap<u64, String>,
}

impl Conns {
    fn bound<V>(map: &mut BTreeMap<u64, V>) {
        while map.len() > MAX_CONNECTIONS {
            map.pop_first();
        }
    }
}

/// What authentication decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The request runs as this account; `how` goes into the request log.
    Account { account: String, how: &'static str },
    /// `401` with these `WWW-Authenticate` values; `how` goes into the request log.
    Challenge { offers: Vec<String>, how: &'static str },
}

fn bare_offers(em: &EwsEmulator) -> Vec<String> {
    if em.lock().knobs.ntlm_disabled {
        vec![BASIC_CHALLENGE.to_owned()]
    } else {
        vec!["Negotiate".to_owned(), "NTLM".to_owned(), BASIC_CHALLENGE.to_owned()]
    }
}

fn refused(em: &EwsEmulator, how: &'static str) -> Outcome {
    Outcome::Challenge { offers: bare_offers(em), how }
}

/// Authenticates a request from its headers and its connection.
pub(crate) fn authorize(em: &EwsEmulator, headers: &HeaderMap, conn: Option<ConnId>) -> Outcome {
    let header = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::trim);
    let Some(auth) = header else {
        let on_conn = conn.and_then(|c| em.lock().ntlm.authenticated.get(&c.serial).cloned());
        return match on_conn {
            Some(account) => Outcome::Account { account, how: "ntlm-connection" },
            None => refused(em, "none"),
        };
    };
    let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
    if scheme.eq_ignore_ascii_case("Basic") {
        return match basic(em, rest.trim()) {
            Some(account) => Outcome::Account { account, how: "basic" },
            None => refused(em, "basic-refused"),
        };
    }
    if scheme.eq_ignore_ascii_case("Bearer") {
        let account = em.lock().bearer_tokens.get(rest.trim()).cloned();
        return match account {
            Some(account) => Outcome::Account { account, how: "bearer" },
            None => refused(em, "bearer-refused"),
        };
    }
    let ntlm_scheme = if scheme.eq_ignore_ascii_case("NTLM") {
        "NTLM"
    } else if scheme.eq_ignore_ascii_case("Negotiate") {
        "Negotiate"
    } else {
        return refused(em, "unknown-scheme");
    };
    if em.lock().knobs.ntlm_disabled {
        return refused(em, "ntlm-disabled");
    }
    let Some(conn) = conn else {
        // Without a connection identity (the router served without `serve`), NTLM cannot be bound.
        return refused(em, "ntlm-no-connection");
    };
    let Ok(token) = base64::engine::general_purpose::STANDARD.decode(rest.trim()) else {
        return refused(em, "ntlm-refused");
    };
    if ntlm::is_negotiate(&token) {
        let mut server_challenge = [0u8; 8];
        if aws_lc_rs::rand::fill(&mut server_challenge).is_err() {
            return refused(em, "ntlm-refused");
        }
        let now = ntlm::filetime(em.now());
        let info = ntlm::write_av_pairs(&[
            ntlm::AvPair { id: ntlm::av::NB_DOMAIN_NAME, value: ntlm::utf16le("CONTOSO") },
            ntlm::AvPair { id: ntlm::av::NB_COMPUTER_NAME, value: ntlm::utf16le("EMU-MBX01") },
            ntlm::AvPair { id: ntlm::av::DNS_DOMAIN_NAME, value: ntlm::utf16le("contoso.com") },
            ntlm::AvPair { id: ntlm::av::DNS_COMPUTER_NAME, value: ntlm::utf16le("emu-mbx01.contoso.com") },
            ntlm::AvPair { id: ntlm::av::TIMESTAMP, value: now.to_le_bytes().to_vec() },
        ]);
        let flags = ntlm::CLIENT_FLAGS | ntlm::TARGET_TYPE_DOMAIN;
        let message = ntlm::challenge_message(flags, server_challenge, "CONTOSO", &info);
        let mut inner = em.lock();
        inner.ntlm.authenticated.remove(&conn.serial);
        inner.ntlm.pending.insert(conn.serial, server_challenge);
        Conns::bound(&mut inner.ntlm.pending);
        let offer = format!("{ntlm_scheme} {}", base64::engine::general_purpose::STANDARD.encode(message));
        return Outcome::Challenge { offers: vec![offer], how: "ntlm-negotiate" };
    }
    let Ok(auth) = ntlm::parse_authenticate(&token) else {
        return refused(em, "ntlm-refused");
    };
    let mut inner = em.lock();
    let Some(server_challenge) = inner.ntlm.pending.remove(&conn.serial) else {
        drop(inner);
        return refused(em, "ntlm-no-challenge");
    };
    let candidates =
        [format!("{}\\{}", auth.domain, auth.user).to_ascii_lowercase(), auth.user.to_ascii_lowercase()];
    let found = candidates
        .iter()
        .find_map(|name| inner.accounts.get(name).map(|a| (name.clone(), a.password.clone())));
    match found {
        Some((account, password)) if ntlm::verify_ntlmv2(&auth, &password, &server_challenge) => {
            inner.ntlm.authenticated.insert(conn.serial, account.clone());
            Conns::bound(&mut inner.ntlm.authenticated);
            Outcome::Account { account, how: "ntlm-authenticate" }
        }
        _ => {
            drop(inner);
            refused(em, "ntlm-refused")
        }
    }
}

fn basic(em: &EwsEmulator, b64: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    let user = user.to_ascii_lowercase();
    let inner = em.lock();
    let account = inner.accounts.get(&user)?;
    (account.password == password).then_some(user)
}
