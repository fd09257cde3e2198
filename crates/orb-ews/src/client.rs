//! `EwsClient`: SOAP 1.1 over HTTPS (rustls) — one request per operation, impersonating a mailbox,
//! with timeouts, a response-size cap, no redirects, optional extra CA roots, and `ErrorServerBusy`'s
//! `BackOffMilliseconds` honoured. Every request goes through one send (`client::transport`): reqwest for
//! Basic and bearer, connections authenticated by NTLM for [`Auth::Ntlm`]; the answer is read and
//! classified the same way for both.

use std::time::Duration;

use orb_core::{CorrelationId, EmailAddress};
use std::sync::Arc;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::error::EwsError;
use crate::model::{
    CalendarItem, CalendarPage, Directory, ItemId, MeetingChange, NewMeeting, PushRequest, Subscription,
    SyncPage, Window,
};
use crate::request::{self, ConflictResolution, Shape};
use crate::response::{self, HttpAnswer};
use crate::series::ItemRef;
use crate::streaming::Affinity;

mod lookup;
mod mail;
mod stream;
mod transport;
use crate::xml::Element;
use transport::{Outgoing, Transport};

/// How ORB authenticates to EWS.
#[derive(Clone)]
pub enum Auth {
    /// `Authorization: Basic` (`DOMAIN\user` or UPN); only over TLS unless
    /// [`EwsConfig::allow_plain_http`].
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: SecretString,
    },
    /// `Authorization: Bearer` (OAuth; on-premises only with Hybrid Modern Authentication, U5).
    Bearer(SecretString),
    /// NTLM (NTLMv2; Windows authentication, Exchange on-premises' default): the three-leg handshake on
    /// a connection of ORB's own, kept and reused ([`crate::ntlm`]); only over TLS unless
    /// [`EwsConfig::allow_plain_http`]. Offered as `NTLM`, or raw NTLM inside `Negotiate`.
    Ntlm {
        /// The NetBIOS domain; `None` takes it from a `DOMAIN\user` user name (a UPN `user@domain`
        /// goes as the user name with no domain).
        domain: Option<String>,
        /// User name: `user`, `DOMAIN\user` or a UPN.
        username: String,
        /// Password.
        password: SecretString,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { username, .. } => write!(f, "Basic({username}, password redacted)"),
            Self::Bearer(_) => f.write_str("Bearer(redacted)"),
            Self::Ntlm { domain: Some(d), username, .. } => {
                write!(f, "Ntlm({d}\\{username}, password redacted)")
            }
            Self::Ntlm { domain: None, username, .. } => write!(f, "Ntlm({username}, password redacted)"),
        }
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct EwsConfig {
    /// `https://{host}/EWS/Exchange.asmx`.
    pub endpoint: Url,
    /// Credentials.
    pub auth: Auth,
    /// Allow credentials over plain `http://` (the emulator and tests only).
    pub allow_plain_http: bool,
    /// Extra trusted CA certificates (PEM), e.g. an internal CA that issued the Exchange certificate.
    pub extra_roots_pem: Vec<Vec<u8>>,
    /// Connecting (TCP + TLS).
    pub connect_timeout: Duration,
    /// One request, from sending to the last byte of the answer.
    pub request_timeout: Duration,
    /// Largest answer read; a larger one is [`EwsError::TooLarge`].
    pub max_response_bytes: usize,
    /// `User-Agent` (admins may allow-list it, ews.md §1.4).
    pub user_agent: String,
    /// `ErrorServerBusy` back-offs up to this long are waited out in the client; longer ones are returned
    /// as [`EwsError::Busy`] for the caller's job back-off.
    pub max_inline_back_off: Duration,
    /// How many busy answers one call waits out before returning [`EwsError::Busy`].
    pub busy_retries: u32,
    /// A streaming connection silent this long is given up as [`EwsError::Transient`] (Exchange sends a
    /// message at least every 45 s; EWS Managed API waits twice that).
    pub stream_idle_timeout: Duration,
    /// What item reads ask for.
    pub shape: Shape,
    /// `MaxEntriesReturned` of a calendar view.
    pub max_entries: u32,
}

impl EwsConfig {
    /// Settings with ORB's defaults for `endpoint` and `auth`.
    pub fn new(endpoint: Url, auth: Auth) -> Self {
        Self {
            endpoint,
            auth,
            allow_plain_http: false,
            extra_roots_pem: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_response_bytes: 8 * 1024 * 1024,
            user_agent: concat!("ORB/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_inline_back_off: Duration::from_secs(30),
            busy_retries: 2,
            stream_idle_timeout: Duration::from_secs(90),
            shape: Shape { subject: true },
            max_entries: 500,
        }
    }
}

/// The typed EWS client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EwsClient {
    transport: Transport,
    config: EwsConfig,
}

/// Who a call acts for and which ORB correlation id it carries (sent as `client-request-id`).
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The impersonated mailbox (also `X-AnchorMailbox`).
    pub mailbox: &'a EmailAddress,
    /// ORB's correlation id.
    pub correlation: CorrelationId,
}

fn config_err(reason: impl Into<String>) -> EwsError {
    EwsError::Config { reason: reason.into() }
}

fn operation_name(op: &Element) -> &str {
    op.name.as_str()
}

impl EwsClient {
    /// A client; refuses credentials over plain HTTP unless allowed, and unreadable CA certificates.
    pub fn new(config: EwsConfig) -> Result<Self, EwsError> {
        match config.endpoint.scheme() {
            "https" => {}
            "http" if config.allow_plain_http => {}
            "http" => {
                return Err(config_err(
                    "the EWS URL is plain http: credentials would cross the network in clear; use https \
                     (allow_plain_http is for the emulator and tests only)",
                ));
            }
            other => return Err(config_err(format!("the EWS URL has scheme `{other}`; use https"))),
        }
        if let Auth::Ntlm { domain, username, password } = &config.auth {
            let pool = transport::NtlmPool::new(&config, username, domain.as_deref(), password.clone())?;
            return Ok(Self { transport: Transport::Ntlm(Arc::new(pool)), config });
        }
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout.min(config.request_timeout))
            .timeout(config.request_timeout);
        for pem in &config.extra_roots_pem {
            let cert = reqwest::Certificate::from_pem(pem).map_err(|e| {
                config_err(format!("an extra CA certificate is not valid PEM ({e}); check the file"))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build().map_err(|e| config_err(format!("cannot build the HTTP client: {e}")))?;
        let transport = Transport::Reqwest { http, endpoint: config.endpoint.clone() };
        Ok(Self { transport, config })
    }

    fn headers(&self, op: &str, target: &Target<'_>, routing: Routing<'_>) -> Result<HeaderMap, EwsError> {
        let mut h = HeaderMap::new();
        let value = |s: &str| {
            HeaderValue::from_str(s)
                .map_err(|_| EwsError::Invalid { reason: "a header value is not valid".into() })
        };
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
        h.insert(ACCEPT, HeaderValue::from_static("text/xml"));
        h.insert(USER_AGENT, value(&self.config.user_agent)?);
        h.insert("SOAPAction", value(&format!("\"{}/{op}\"", crate::xml::MESSAGES.trim_end_matches('/')))?);
        h.insert("client-request-id", value(&target.correlation.to_string())?);
        h.insert("return-client-request-id", HeaderValue::from_static("true"));
        h.insert("X-AnchorMailbox", value(target.mailbox.as_str())?);
        if let Routing::Affinity(cookie) = routing {
            // Notification affinity (ews.md §2.2): the anchor mailbox, the preference, and the cookie.
            h.insert("X-PreferServerAffinity", HeaderValue::from_static("true"));
            if let Some(cookie) = cookie {
                h.insert(reqwest::header::COOKIE, value(&cookie.cookie_header())?);
            }
        }
        let mut auth = match &self.config.auth {
            // The transport authenticates the connection.
            Auth::Ntlm { .. } => return Ok(h),
            Auth::Basic { username, password } => {
                use base64::Engine as _;
                let raw = format!("{username}:{}", password.expose_secret());
                HeaderValue::from_str(&format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ))
            }
            Auth::Bearer(token) => HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())),
        }
        .map_err(|_| config_err("the credentials contain characters not allowed in an HTTP header"))?;
        auth.set_sensitive(true);
        h.insert(AUTHORIZATION, auth);
        Ok(h)
    }

    /// Sends one operation for `target` and returns the operation's response element, waiting out short
    /// `ErrorServerBusy` back-offs.
    pub async fn call(&self, target: Target<'_>, op: Element) -> Result<Element, EwsError> {
        self.call_routed(target, op, Routing::Plain).await.map(|(answer, _)| answer)
    }

    async fn call_routed(
        &self,
        target: Target<'_>,
        op: Element,
        routing: Routing<'_>,
    ) -> Result<(Element, Option<Affinity>), EwsError> {
        let mut busy_seen = 0;
        loop {
            match self.call_once(&target, &op, routing).await {
                Err(EwsError::Busy { back_off: Some(wait), .. })
                    if busy_seen < self.config.busy_retries && wait <= self.config.max_inline_back_off =>
                {
                    busy_seen += 1;
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    async fn call_once(
        &self,
        target: &Target<'_>,
        op: &Element,
        routing: Routing<'_>,
    ) -> Result<(Element, Option<Affinity>), EwsError> {
        let body = request::envelope(Some(target.mailbox), op.clone()).to_document();
        let headers = self.headers(operation_name(op), target, routing)?;
        let out = Outgoing { headers, body: body.into(), timeout: self.config.request_timeout };
        let mut resp = self.transport.send(&out).await?;
        let status = resp.status;
        if (300..400).contains(&status) {
            // Exchange redirects to /ews/genericerrorpage.htm under stress; ORB follows no redirect.
            return Err(EwsError::Transient {
                status: Some(status),
                what: format!("HTTP {status} redirect (not followed)"),
            });
        }
        let affinity = Affinity::from_set_cookie(
            resp.headers.get_all(reqwest::header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()),
        );
        let content_type = resp.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let retry_after = resp
            .headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let limit = self.config.max_response_bytes;
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(EwsError::TooLarge { limit });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            if bytes.len() + chunk.len() > limit {
                return Err(EwsError::TooLarge { limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&bytes);
        let answer = HttpAnswer { status, content_type: content_type.as_deref(), retry_after, body: &text };
        Ok((response::operation_response(&answer, Some(target.mailbox.as_str()))?, affinity))
    }

    /// The room's (or any impersonated mailbox's) calendar in `window` (expanded occurrences).
    pub async fn calendar_view(&self, target: Target<'_>, window: Window) -> Result<CalendarPage, EwsError> {
        if window.end <= window.start {
            return Err(EwsError::Invalid { reason: "the calendar window ends before it starts".into() });
        }
        if window.end - window.start > chrono::Duration::days(730) {
            return Err(EwsError::Invalid {
                reason: "a calendar view may span at most two years; split the window".into(),
            });
        }
        let op = request::find_calendar_view(window, self.config.max_entries, self.config.shape);
        let answer = self.call(target, op).await?;
        response::find_item(&answer, Some(target.mailbox.as_str()))
    }

    /// Reads items by id with ORB's explicit properties (never the body); one result per id.
    pub async fn get_items(
        &self,
        target: Target<'_>,
        ids: &[ItemId],
    ) -> Result<Vec<Result<CalendarItem, EwsError>>, EwsError> {
        let refs: Vec<ItemRef> = ids.iter().map(ItemRef::from).collect();
        self.get_refs(target, &refs).await
    }

    /// Reads items, occurrences (by master and index) or masters (of an occurrence); one result each.
    pub async fn get_refs(
        &self,
        target: Target<'_>,
        ids: &[ItemRef],
    ) -> Result<Vec<Result<CalendarItem, EwsError>>, EwsError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let answer = self.call(target, request::get_refs(ids, self.config.shape)).await?;
        let out = response::get_item(&answer, Some(target.mailbox.as_str()))?;
        if out.len() != ids.len() {
            return Err(EwsError::Protocol {
                reason: format!("{} ids asked, {} answers", ids.len(), out.len()),
            });
        }
        Ok(out)
    }

    /// Reads one item, occurrence or master.
    pub async fn get_item(
        &self,
        target: Target<'_>,
        id: impl Into<ItemRef>,
    ) -> Result<CalendarItem, EwsError> {
        self.get_refs(target, &[id.into()])
            .await?
            .pop()
            .unwrap_or_else(|| Err(EwsError::Protocol { reason: "GetItem answered nothing".into() }))
    }

    /// Creates a meeting in the impersonated organizer's calendar, inviting the room and the people; or,
    /// without a room ([`NewMeeting::room`] `None`), a plain appointment in the impersonated mailbox (a
    /// room's own calendar in "room only" mode: nothing is sent, the room's attendant is not involved).
    /// Bad input ([`NewMeeting::validate`], times, match id, series) is [`EwsError::Invalid`] and nothing
    /// is sent.
    pub async fn create_meeting(&self, target: Target<'_>, meeting: &NewMeeting) -> Result<ItemId, EwsError> {
        meeting.validate().map_err(|reason| EwsError::Invalid { reason })?;
        if meeting.end <= meeting.start {
            return Err(EwsError::Invalid { reason: "the meeting ends before it starts".into() });
        }
        if meeting.match_id.trim().is_empty() {
            return Err(EwsError::Invalid { reason: "a meeting ORB creates needs its match id".into() });
        }
        if let Some(rec) = &meeting.recurrence {
            rec.validate().map_err(|reason| EwsError::Invalid { reason })?;
            if meeting.time_zone.is_none() {
                return Err(EwsError::Invalid {
                    reason:
                        "a series needs the room's time zone (NewMeeting::time_zone), or its occurrences \
                             would follow UTC across daylight-saving changes"
                            .into(),
                });
            }
        }
        let answer = self.call(target, request::create_meeting(meeting)).await?;
        response::written_item(&answer, Some(target.mailbox.as_str()))
    }

    /// Updates a meeting, an appointment, a series or one occurrence (which becomes an exception) if it
    /// has not changed since the change key ORB read (`NeverOverwrite`; for [`ItemRef::Occurrence`] the
    /// master's); a change in between is [`EwsError::Changed`]: re-read and re-plan. People and rooms
    /// are replaced as a whole; [`MeetingChange::remove_rooms`] drops the room (it gets a cancellation).
    /// A change [`MeetingChange::validate`] refuses (a new room *and* `remove_rooms`, an attendee twice)
    /// is [`EwsError::Invalid`] and nothing is sent.
    pub async fn update_meeting(
        &self,
        target: Target<'_>,
        id: impl Into<ItemRef>,
        change: &MeetingChange,
    ) -> Result<ItemId, EwsError> {
        let id: ItemRef = id.into();
        let change_key = match &id {
            ItemRef::Item(i) | ItemRef::Occurrence { master: i, .. } | ItemRef::MasterOf(i) => &i.change_key,
        };
        if change_key.is_none() {
            return Err(EwsError::Invalid { reason: "an update needs the change key ORB last read".into() });
        }
        if change.is_empty() {
            return Err(EwsError::Invalid { reason: "an update with nothing to change".into() });
        }
        change.validate().map_err(|reason| EwsError::Invalid { reason })?;
        if let (Some(s), Some(e)) = (change.start, change.end)
            && e <= s
        {
            return Err(EwsError::Invalid { reason: "the meeting would end before it starts".into() });
        }
        let op = request::update_meeting(id, change, ConflictResolution::NeverOverwrite);
        let answer = self.call(target, op).await?;
        response::written_item(&answer, Some(target.mailbox.as_str()))
    }

    /// The organizer cancels a meeting, a series (its master's id) or one occurrence (its own id from a
    /// calendar view); cancellations go to the room and attendees.
    pub async fn cancel_meeting(&self, target: Target<'_>, id: &ItemId) -> Result<(), EwsError> {
        let answer = self.call(target, request::cancel_meeting(id)).await?;
        response::no_payload(&answer, Some(target.mailbox.as_str()))
    }

    /// Deletes an item, a series or one occurrence, sending cancellations if it is a meeting ORB
    /// organizes; an appointment (a room's own item, "room only") is simply deleted.
    pub async fn delete_item(&self, target: Target<'_>, id: impl Into<ItemRef>) -> Result<(), EwsError> {
        let answer = self.call(target, request::delete_item(id)).await?;
        response::no_payload(&answer, Some(target.mailbox.as_str()))
    }

    /// `GetRoomLists` (acting as `target`, usually the service account's own or a room's mailbox).
    pub async fn room_lists(&self, target: Target<'_>) -> Result<Vec<Directory>, EwsError> {
        let answer = self.call(target, request::get_room_lists()).await?;
        response::room_lists(&answer)
    }

    /// `GetRooms` of one room list.
    pub async fn rooms(
        &self,
        target: Target<'_>,
        room_list: &EmailAddress,
    ) -> Result<Vec<Directory>, EwsError> {
        let answer = self.call(target, request::get_rooms(room_list)).await?;
        response::rooms(&answer)
    }

    /// One page of `SyncFolderItems` on the calendar (`None` = from the beginning).
    pub async fn sync_calendar(
        &self,
        target: Target<'_>,
        sync_state: Option<&str>,
        max_changes: u32,
    ) -> Result<SyncPage, EwsError> {
        let answer = self.call(target, request::sync_folder_items(sync_state, max_changes)).await?;
        response::sync_folder_items(&answer, Some(target.mailbox.as_str()))
    }

    /// A push subscription on the calendar (start the listener first).
    pub async fn subscribe_push(
        &self,
        target: Target<'_>,
        req: &PushRequest,
    ) -> Result<Subscription, EwsError> {
        let url =
            Url::parse(&req.url).map_err(|e| EwsError::Invalid { reason: format!("callback URL: {e}") })?;
        if url.scheme() != "https" && !self.config.allow_plain_http {
            return Err(EwsError::Invalid { reason: "the callback URL must be https".into() });
        }
        let answer = self.call(target, request::subscribe_push(req)).await?;
        response::subscribe(&answer, Some(target.mailbox.as_str()))
    }

    /// `Unsubscribe`.
    pub async fn unsubscribe(&self, target: Target<'_>, subscription_id: &str) -> Result<(), EwsError> {
        let answer = self.call(target, request::unsubscribe(subscription_id)).await?;
        response::no_payload(&answer, Some(target.mailbox.as_str()))
    }
}

/// How a request is routed: plainly, or with notification affinity (and the group's cookie, if known).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Routing<'a> {
    Plain,
    Affinity(Option<&'a Affinity>),
}

pub(crate) fn network(e: &reqwest::Error) -> EwsError {
    let what = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        // Without the URL: it carries nothing secret, but the error text is enough.
        format!("network error: {e}")
    };
    EwsError::Transient { status: None, what }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic() -> Auth {
        Auth::Basic { username: "svc".into(), password: SecretString::from("pw-secret") }
    }

    #[test]
    fn credentials_over_plain_http_are_refused_unless_allowed() {
        let url = Url::parse("http://exchange.example/EWS/Exchange.asmx").unwrap();
        let err = EwsClient::new(EwsConfig::new(url.clone(), basic())).unwrap_err();
        assert!(err.to_string().contains("use https"), "{err}");
        let err =
            EwsClient::new(EwsConfig::new(url.clone(), Auth::Bearer(SecretString::from("t")))).unwrap_err();
        assert!(matches!(err, EwsError::Config { .. }));
        assert!(
            EwsClient::new(EwsConfig { allow_plain_http: true, ..EwsConfig::new(url.clone(), basic()) })
                .is_ok()
        );
        let ntlm = Auth::Ntlm {
            domain: Some("CONTOSO".into()),
            username: "svc".into(),
            password: SecretString::from("ntlm-secret"),
        };
        let err = EwsClient::new(EwsConfig::new(url.clone(), ntlm.clone())).unwrap_err();
        assert!(err.to_string().contains("use https"), "{err}");
        let printed = format!("{ntlm:?}");
        assert!(printed.contains("CONTOSO\\svc") && !printed.contains("ntlm-secret"), "{printed}");
        assert!(
            EwsClient::new(EwsConfig { allow_plain_http: true, ..EwsConfig::new(url.clone(), ntlm) }).is_ok()
        );
        let ftp = Url::parse("ftp://exchange.example/").unwrap();
        assert!(EwsClient::new(EwsConfig::new(ftp, basic())).is_err());
    }

    #[test]
    fn a_bad_extra_root_is_refused_and_secrets_are_not_printed() {
        let url = Url::parse("https://exchange.example/EWS/Exchange.asmx").unwrap();
        let cfg = EwsConfig { extra_roots_pem: vec![b"not a pem".to_vec()], ..EwsConfig::new(url, basic()) };
        let printed = format!("{cfg:?}");
        assert!(!printed.contains("pw-secret"), "{printed}");
        // reqwest accepts PEM text without certificates as an empty list; a broken certificate is refused.
        let broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec();
        let cfg = EwsConfig { extra_roots_pem: vec![broken], ..cfg };
        assert!(matches!(EwsClient::new(cfg), Err(EwsError::Config { .. })));
    }
}
