//! The one "send" every request goes through, whatever the authentication: [`Transport::send`] takes
//! a prepared request ([`Outgoing`]: headers, body, time allowed) and gives back the answer as it
//! arrives ([`Incoming`]: status, headers, body read chunk by chunk). The callers (SOAP calls,
//! streaming) classify the answer the same way for every transport.
//!
//! - Basic and bearer go through reqwest (pooled connections, the header on every request).
//! - NTLM authenticates a TCP connection, not a request, and reqwest cannot pin one; so NTLM requests
//!   go over connections this module owns (hyper's HTTP/1.1 client over `tokio::net::TcpStream`, with
//!   `tokio-rustls` and the same platform verifier plus extra roots reqwest uses for https). A new
//!   connection runs the three legs (`Authorization: NTLM <NEGOTIATE>` → `401 WWW-Authenticate: NTLM
//!   <CHALLENGE>` → `NTLM <AUTHENTICATE>`), each leg carrying the real request, so the third answer is
//!   the request's answer. Authenticated connections are kept (up to [`POOL_SIZE`] idle) and later
//!   requests go over them without a header; a `401` on one re-runs the handshake once on a new
//!   connection; a closed one is dropped. If the server offers `Negotiate` but not `NTLM`, the same
//!   raw NTLM tokens go in `Negotiate` (no SPNEGO wrapping, as IIS accepts). Over TLS the AUTHENTICATE
//!   carries the channel-binding token of the server's certificate (Extended Protection, ews.md U3).
//!   No proxy is used on this path (reqwest's honours `HTTPS_PROXY`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::HeaderMap;
use http::header::{AUTHORIZATION, HOST, WWW_AUTHENTICATE};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use secrecy::{ExposeSecret as _, SecretString};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_rustls::rustls;
use url::Url;

use super::{EwsConfig, config_err, network};
use crate::error::EwsError;
use crate::ntlm;

/// How many authenticated idle connections are kept.
pub(crate) const POOL_SIZE: usize = 4;

/// A request ready to send.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// From sending to the last byte of the answer.
    pub(crate) timeout: Duration,
}

/// How requests reach Exchange.
#[derive(Clone)]
pub(crate) enum Transport {
    /// Basic and bearer: the header is already in [`Outgoing::headers`].
    Reqwest { http: reqwest::Client, endpoint: Url },
    /// NTLM over connections this module owns.
    Ntlm(Arc<NtlmPool>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Reqwest { .. } => f.write_str("Transport::Reqwest"),
            Self::Ntlm(_) => f.write_str("Transport::Ntlm"),
        }
    }
}

impl Transport {
    /// Sends `out` and returns the answer once its head has arrived.
    pub(crate) async fn send(&self, out: &Outgoing) -> Result<Incoming, EwsError> {
        match self {
            Self::Reqwest { http, endpoint } => {
                let sent = http
                    .post(endpoint.clone())
                    .headers(out.headers.clone())
                    .timeout(out.timeout)
                    .body(out.body.clone())
                    .send()
                    .await;
                let resp = sent.map_err(|e| network(&e))?;
                Ok(Incoming {
                    status: resp.status().as_u16(),
                    headers: resp.headers().clone(),
                    body: Body::Reqwest(Box::new(resp)),
                })
            }
            Self::Ntlm(pool) => pool.send(out).await,
        }
    }
}

/// An answer whose body is read as it arrives.
pub(crate) struct Incoming {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    body: Body,
}

enum Body {
    Reqwest(Box<reqwest::Response>),
    Hyper {
        body: hyper::body::Incoming,
        deadline: Instant,
        /// The connection, back to the pool once the body has been read to its end.
        conn: Option<(Conn, Arc<NtlmPool>)>,
    },
}

impl Incoming {
    /// `Content-Length`, if sent.
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.headers.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
    }

    /// The next piece of the body; `None` at its end.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>, EwsError> {
        match &mut self.body {
            Body::Reqwest(resp) => resp.chunk().await.map_err(|e| network(&e)),
            Body::Hyper { body, deadline, conn } => loop {
                let frame =
                    tokio::time::timeout_at(*deadline, body.frame()).await.map_err(|_| timed_out())?;
                match frame {
                    None => {
                        if let Some((c, pool)) = conn.take() {
                            pool.put(c);
                        }
                        return Ok(None);
                    }
                    Some(Err(e)) => return Err(hyper_error(&e)),
                    Some(Ok(f)) => {
                        if let Ok(data) = f.into_data() {
                            return Ok(Some(data));
                        }
                    }
                }
            },
        }
    }
}

fn timed_out() -> EwsError {
    EwsError::Transient { status: None, what: "timed out".into() }
}

fn hyper_error(e: &hyper::Error) -> EwsError {
    EwsError::Transient { status: None, what: format!("network error: {e}") }
}

/// Reads and drops the rest of a body (so the connection can carry the next request), at most `limit`
/// bytes.
async fn drain(body: &mut hyper::body::Incoming, deadline: Instant, limit: usize) -> Result<(), EwsError> {
    let mut seen = 0usize;
    while let Some(frame) = tokio::time::timeout_at(deadline, body.frame()).await.map_err(|_| timed_out())? {
        let frame = frame.map_err(|e| hyper_error(&e))?;
        if let Some(d) = frame.data_ref() {
            seen += d.len();
            if seen > limit {
                return Err(EwsError::TooLarge { limit });
            }
        }
    }
    Ok(())
}

/// An open HTTP/1.1 connection (authenticated once it is in the pool).
pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// The TLS channel-binding token, if over TLS.
    channel_bindings: Option<[u8; 16]>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The NTLM connections of one client.
pub(crate) struct NtlmPool {
    host: String,
    port: u16,
    /// `Host` header value.
    authority: String,
    /// The request target (path and query).
    target: String,
    tls: Option<(Arc<rustls::ClientConfig>, rustls::pki_types::ServerName<'static>)>,
    connect_timeout: Duration,
    max_response_bytes: usize,
    user: String,
    domain: String,
    password: SecretString,
    idle: Mutex<Vec<Conn>>,
}

/// The authentication schemes a `401` offers, with their token when one follows.
fn offered(headers: &HeaderMap) -> Vec<(String, Option<String>)> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| {
            let v = v.trim();
            match v.split_once(' ') {
                Some((scheme, rest)) => (scheme.to_owned(), Some(rest.trim().to_owned())),
                None => (v.to_owned(), None),
            }
        })
        .collect()
}

/// The CHALLENGE token of `scheme` in a `401` (a token that is not a `Basic`/`realm=` parameter).
fn challenge_token(offers: &[(String, Option<String>)], scheme: &str) -> Option<Vec<u8>> {
    offers.iter().filter(|(s, _)| s.eq_ignore_ascii_case(scheme)).find_map(|(_, token)| {
        base64::engine::general_purpose::STANDARD.decode(token.as_deref()?.trim()).ok()
    })
}

fn names_scheme(offers: &[(String, Option<String>)], scheme: &str) -> bool {
    offers.iter().any(|(s, _)| s.eq_ignore_ascii_case(scheme))
}

impl NtlmPool {
    /// A pool for `config` (whose auth is NTLM); refuses unreadable CA certificates.
    pub(crate) fn new(
        config: &EwsConfig,
        username: &str,
        domain: Option<&str>,
        password: SecretString,
    ) -> Result<Self, EwsError> {
        let url = &config.endpoint;
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(config_err("the EWS URL has no host")),
        };
        let port = url.port_or_known_default().ok_or_else(|| config_err("the EWS URL has no port"))?;
        let authority = url[url::Position::BeforeHost..url::Position::AfterPort].to_owned();
        let target = url[url::Position::BeforePath..url::Position::AfterQuery].to_owned();
        let tls = if url.scheme() == "https" {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| config_err(format!("the EWS host is not a valid TLS name: {e}")))?;
            Some((Arc::new(tls_config(&config.extra_roots_pem)?), name))
        } else {
            None
        };
        let (user, domain) = ntlm::split_user(username, domain);
        Ok(Self {
            host,
            port,
            authority,
            target,
            tls,
            connect_timeout: config.connect_timeout.min(config.request_timeout),
            max_response_bytes: config.max_response_bytes,
            user: user.to_owned(),
            domain: domain.to_owned(),
            password,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn take_idle(&self) -> Option<Conn> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// Keeps an authenticated connection whose answer has been read, if it is open and there is room.
    fn put(&self, conn: Conn) {
        if conn.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < POOL_SIZE {
            idle.push(conn);
        }
    }

    fn request(
        &self,
        out: &Outgoing,
        authorization: Option<String>,
    ) -> Result<http::Request<Full<Bytes>>, EwsError> {
        let mut req = http::Request::post(self.target.as_str())
            .body(Full::new(out.body.clone()))
            .map_err(|e| config_err(format!("cannot build the request: {e}")))?;
        *req.headers_mut() = out.headers.clone();
        let host = http::HeaderValue::from_str(&self.authority)
            .map_err(|_| config_err("the EWS host is not a valid Host header"))?;
        req.headers_mut().insert(HOST, host);
        if let Some(a) = authorization {
            let mut v = http::HeaderValue::from_str(&a)
                .map_err(|_| EwsError::Protocol { reason: "an NTLM token is not a valid header".into() })?;
            v.set_sensitive(true);
            req.headers_mut().insert(AUTHORIZATION, v);
        }
        Ok(req)
    }

    async fn connect(&self, deadline: Instant) -> Result<Conn, EwsError> {
        let connect_by = deadline.min(Instant::now() + self.connect_timeout);
        let could_not = || EwsError::Transient { status: None, what: "could not connect".into() };
        let tcp = tokio::time::timeout_at(
            connect_by,
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| timed_out())?
        .map_err(|_| could_not())?;
        let _ = tcp.set_nodelay(true);
        let (io, channel_bindings): (Box<dyn Io>, _) = match &self.tls {
            None => (Box::new(tcp), None),
            Some((config, name)) => {
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                let stream = tokio::time::timeout_at(connect_by, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|e| EwsError::Transient {
                        status: None,
                        what: format!("TLS handshake failed: {e}"),
                    })?;
                let cb = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| ntlm::channel_bindings(c));
                (Box::new(stream), cb)
            }
        };
        let (sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| hyper_error(&e))?;
        tokio::spawn(async move {
            // Ends when the server closes the connection or the last sender is dropped.
            let _ = connection.await;
        });
        Ok(Conn { sender, channel_bindings })
    }

    /// Sends one request over `conn`; `Ok(None)` when the connection could not take it (nothing sent).
    async fn exchange(
        &self,
        conn: &mut Conn,
        out: &Outgoing,
        authorization: Option<String>,
        deadline: Instant,
    ) -> Result<Option<http::Response<hyper::body::Incoming>>, EwsError> {
        match tokio::time::timeout_at(deadline, conn.sender.ready()).await {
            Err(_) => return Err(timed_out()),
            Ok(Err(_)) => return Ok(None),
            Ok(Ok(())) => {}
        }
        let req = self.request(out, authorization)?;
        match tokio::time::timeout_at(deadline, conn.sender.try_send_request(req)).await {
            Err(_) => Err(timed_out()),
            Ok(Ok(resp)) => Ok(Some(resp)),
            Ok(Err(e)) if e.message().is_some() => Ok(None),
            Ok(Err(e)) => Err(hyper_error(e.error())),
        }
    }

    fn incoming(
        self: &Arc<Self>,
        resp: http::Response<hyper::body::Incoming>,
        conn: Option<Conn>,
        deadline: Instant,
    ) -> Incoming {
        let (parts, body) = resp.into_parts();
        Incoming {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: Body::Hyper { body, deadline, conn: conn.map(|c| (c, self.clone())) },
        }
    }

    async fn send(self: &Arc<Self>, out: &Outgoing) -> Result<Incoming, EwsError> {
        let deadline = Instant::now() + out.timeout;
        // An authenticated connection first; a 401 there (the server forgot it) means one new handshake.
        while let Some(mut conn) = self.take_idle() {
            let Some(resp) = self.exchange(&mut conn, out, None, deadline).await? else { continue };
            if resp.status() != http::StatusCode::UNAUTHORIZED {
                return Ok(self.incoming(resp, Some(conn), deadline));
            }
            break;
        }
        self.handshake(out, deadline).await
    }

    /// A new connection, authenticated by the three legs, each carrying `out`.
    async fn handshake(self: &Arc<Self>, out: &Outgoing, deadline: Instant) -> Result<Incoming, EwsError> {
        let mut conn = self.connect(deadline).await?;
        let negotiate = base64::engine::general_purpose::STANDARD.encode(ntlm::negotiate());
        let mut tried_negotiate = false;
        let mut scheme = "NTLM";
        loop {
            let first =
                self.exchange(&mut conn, out, Some(format!("{scheme} {negotiate}")), deadline).await?;
            let Some(mut first) = first else {
                return Err(EwsError::Transient {
                    status: None,
                    what: "the connection closed during NTLM".into(),
                });
            };
            if first.status() != http::StatusCode::UNAUTHORIZED {
                // No challenge: the server let the request through (or failed it); classify as usual.
                return Ok(self.incoming(first, Some(conn), deadline));
            }
            let offers = offered(first.headers());
            let token = challenge_token(&offers, scheme);
            drain(first.body_mut(), deadline, self.max_response_bytes).await?;
            let Some(token) = token else {
                if names_scheme(&offers, scheme) {
                    // The scheme is offered but our NEGOTIATE got no CHALLENGE: refused outright.
                    return Err(EwsError::Unauthorized { status: 401 });
                }
                if !tried_negotiate && names_scheme(&offers, "Negotiate") {
                    tried_negotiate = true;
                    scheme = "Negotiate";
                    continue;
                }
                let names: Vec<&str> = offers.iter().map(|(s, _)| s.as_str()).collect();
                return Err(EwsError::AuthNotOffered {
                    wanted: "NTLM".into(),
                    offered: if names.is_empty() { "nothing".into() } else { names.join(", ") },
                });
            };
            let challenge =
                ntlm::parse_challenge(&token).map_err(|e| EwsError::Protocol { reason: e.to_string() })?;
            let mut client_challenge = [0u8; 8];
            aws_lc_rs::rand::fill(&mut client_challenge)
                .map_err(|_| EwsError::Transient { status: None, what: "no random bytes for NTLM".into() })?;
            let who = ntlm::Identity {
                user: &self.user,
                domain: &self.domain,
                password: self.password.expose_secret(),
            };
            let now = ntlm::filetime(chrono::Utc::now());
            let message = ntlm::authenticate(&who, &challenge, client_challenge, now, conn.channel_bindings)
                .map_err(|e| EwsError::Protocol { reason: e.to_string() })?;
            let auth = format!("{scheme} {}", base64::engine::general_purpose::STANDARD.encode(message));
            let Some(resp) = self.exchange(&mut conn, out, Some(auth), deadline).await? else {
                return Err(EwsError::Transient {
                    status: None,
                    what: "the connection closed during NTLM".into(),
                });
            };
            // A 401 now is the credentials (classified by the caller): that connection is not kept.
            let keep = resp.status() != http::StatusCode::UNAUTHORIZED;
            return Ok(self.incoming(resp, keep.then_some(conn), deadline));
        }
    }
}

/// rustls with the platform's verifier plus `extra_roots_pem` (what reqwest builds), HTTP/1.1 only.
fn tls_config(extra_roots_pem: &[Vec<u8>]) -> Result<rustls::ClientConfig, EwsError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = Vec::new();
    for pem in extra_roots_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| {
                config_err(format!("an extra CA certificate is not valid PEM ({e}); check the file"))
            })?;
            roots.push(cert);
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = if roots.is_empty() {
        rustls_platform_verifier::Verifier::new(provider.clone())
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(roots, provider.clone())
    }
    .map_err(|e| config_err(format!("cannot set up certificate checks: {e}")))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_err(format!("cannot set up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
