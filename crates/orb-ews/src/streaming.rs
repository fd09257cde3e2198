//! Streaming notifications as pure functions (ews.md §4.2): the `StreamingSubscriptionRequest` and
//! `GetStreamingEvents` requests, the [`EnvelopeSplitter`] that cuts the one long chunked answer into
//! its SOAP envelopes as they complete, the reader of one envelope ([`parse_envelope`]) into a
//! [`StreamBatch`] (notifications shared with push, per-subscription errors, `ConnectionStatus`), the
//! writer of one envelope for the emulator, and the affinity cookie (ews.md §2.2).
//!
//! The I/O (one HTTP response read as it arrives) is [`crate::EwsClient::stream_events`].

use crate::error::{EwsError, classify_code};
use crate::push::{Notification, notification_element, notification_of};
use crate::response::{self, HttpAnswer};
use crate::xml::{Element, MESSAGES, TYPES};

/// At most this many `SubscriptionId`s per `GetStreamingEvents` (ews.md §2.2, §4.2).
pub const MAX_SUBSCRIPTION_IDS: usize = 200;

/// The affinity cookie's name: Exchange sets it on a `Subscribe` sent with `X-PreferServerAffinity:
/// true`; later `Subscribe` / `GetStreamingEvents` of the same group send it back.
pub const AFFINITY_COOKIE: &str = "X-BackEndOverrideCookie";

/// `ConnectionTimeout`: how many minutes Exchange holds a `GetStreamingEvents` answer open (1–30).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConnectionTimeout(u8);

impl ConnectionTimeout {
    /// The longest connection Exchange allows (30 minutes).
    pub const MAX: Self = Self(30);

    /// A timeout of `minutes`; outside 1–30 is [`EwsError::Invalid`] (Exchange would refuse it).
    pub fn minutes(minutes: u32) -> Result<Self, EwsError> {
        match u8::try_from(minutes) {
            Ok(m) if (1..=30).contains(&m) => Ok(Self(m)),
            _ => Err(EwsError::Invalid {
                reason: format!("ConnectionTimeout is {minutes} minutes; Exchange accepts 1 to 30"),
            }),
        }
    }

    /// The minutes.
    pub fn get(self) -> u32 {
        u32::from(self.0)
    }
}

/// A server-affinity cookie value (`X-BackEndOverrideCookie`), kept per subscription group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affinity(String);

impl Affinity {
    /// The value as Exchange set it.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `Cookie` request header carrying it.
    pub fn cookie_header(&self) -> String {
        format!("{AFFINITY_COOKIE}={}", self.0)
    }

    /// The affinity cookie among `Set-Cookie` header values, if one is there.
    pub fn from_set_cookie<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        values.into_iter().find_map(|v| {
            let pair = v.split(';').next()?.trim();
            let (name, value) = pair.split_once('=')?;
            (name.trim().eq_ignore_ascii_case(AFFINITY_COOKIE) && !value.trim().is_empty())
                .then(|| Self(value.trim().to_owned()))
        })
    }
}

/// A created streaming subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamingSubscription {
    /// `SubscriptionId`.
    pub id: String,
    /// The group's affinity cookie (from this answer, or the one sent), for its later requests.
    pub affinity: Option<Affinity>,
}

/// `ConnectionStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    /// Keep-alive: the connection stays open.
    Ok,
    /// The connection ends (its `ConnectionTimeout` passed); open a new one for the same ids.
    Closed,
}

impl ConnectionStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Closed => "Closed",
        }
    }
}

/// A per-subscription error of a streaming answer: `ResponseClass="Error"` with the ids it applies to
/// (`ErrorSubscriptionIds`); the connection goes on for the other ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFailure {
    /// `ResponseCode`, e.g. `ErrorSubscriptionNotFound`.
    pub code: String,
    /// `MessageText`.
    pub message: String,
    /// The subscriptions it applies to.
    pub subscription_ids: Vec<String>,
}

impl StreamFailure {
    /// The error as the client classifies the code (lost subscriptions are
    /// [`EwsError::SubscriptionLost`]: subscribe again and re-sync the room).
    pub fn error(&self) -> EwsError {
        classify_code(&self.code, &self.message, None, None)
    }
}

/// What one envelope of a streaming answer carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamBatch {
    /// Notifications in order (one per subscription that had events).
    pub notifications: Vec<Notification>,
    /// Subscriptions that failed (the others go on).
    pub failure: Option<StreamFailure>,
    /// `ConnectionStatus`, if the envelope carries one.
    pub status: Option<ConnectionStatus>,
}

impl StreamBatch {
    /// Whether this is the connection's last envelope (`ConnectionStatus` `Closed`).
    pub fn is_closed(&self) -> bool {
        self.status == Some(ConnectionStatus::Closed)
    }
}

fn protocol(reason: impl Into<String>) -> EwsError {
    EwsError::Protocol { reason: reason.into() }
}

fn t(name: &str) -> Element {
    Element::new(TYPES, name)
}

fn m(name: &str) -> Element {
    Element::new(MESSAGES, name)
}

/// `Subscribe` with a `StreamingSubscriptionRequest` on the impersonated mailbox's calendar, for the
/// event types push uses ([`crate::request::EVENT_TYPES`]). No watermark: streaming has none.
pub fn subscribe_request() -> Element {
    m("Subscribe").child(
        m("StreamingSubscriptionRequest")
            .child(t("FolderIds").child(t("DistinguishedFolderId").attr("Id", "calendar")))
            .child(
                t("EventTypes").children(crate::request::EVENT_TYPES.iter().map(|e| t("EventType").text(*e))),
            ),
    )
}

/// `GetStreamingEvents` for 1–200 subscription ids.
pub fn get_streaming_events_request(ids: &[String], timeout: ConnectionTimeout) -> Result<Element, EwsError> {
    if ids.is_empty() {
        return Err(EwsError::Invalid {
            reason: "GetStreamingEvents needs at least one subscription id".into(),
        });
    }
    if ids.len() > MAX_SUBSCRIPTION_IDS {
        return Err(EwsError::Invalid {
            reason: format!(
                "{} subscription ids on one connection; Exchange takes at most {MAX_SUBSCRIPTION_IDS}: split them",
                ids.len()
            ),
        });
    }
    if let Some(bad) = ids.iter().find(|i| i.trim().is_empty()) {
        return Err(EwsError::Invalid { reason: format!("an empty subscription id ({bad:?})") });
    }
    Ok(m("GetStreamingEvents")
        .child(m("SubscriptionIds").children(ids.iter().map(|i| t("SubscriptionId").text(i.as_str()))))
        .child(m("ConnectionTimeout").text(timeout.get().to_string())))
}

/// Reads one envelope of a streaming answer. A message with `ResponseClass="Error"` and
/// `ErrorSubscriptionIds` becomes the batch's [`StreamBatch::failure`]; one without ids fails the whole
/// connection and is returned as its error (as is a SOAP fault).
pub fn parse_envelope(document: &str) -> Result<StreamBatch, EwsError> {
    let answer =
        HttpAnswer { status: 200, content_type: Some("text/xml"), retry_after: None, body: document };
    let op = response::operation_response(&answer, None)?;
    if !op.is(MESSAGES, "GetStreamingEventsResponse") {
        return Err(protocol(format!(
            "a streaming answer holds {}, not GetStreamingEventsResponse",
            op.name
        )));
    }
    let mut batch = StreamBatch::default();
    for msg in response::response_messages(&op)? {
        // Namespace quirk (ews.md §4.2): `Notification` and `SubscriptionId` come as m: or t:.
        let either = |el: &Element, name: &str| -> Vec<Element> {
            el.children
                .iter()
                .filter(|c| c.name == name && (c.ns == MESSAGES || c.ns == TYPES))
                .cloned()
                .collect()
        };
        if msg.get_attr("ResponseClass") == Some("Error") {
            let code = msg.child_text(MESSAGES, "ResponseCode").unwrap_or("ErrorUnknown").trim().to_owned();
            let message = msg.child_text(MESSAGES, "MessageText").unwrap_or_default().trim().to_owned();
            let ids: Vec<String> = either(msg, "ErrorSubscriptionIds")
                .iter()
                .flat_map(|l| either(l, "SubscriptionId"))
                .map(|i| i.text.trim().to_owned())
                .collect();
            if ids.is_empty() {
                return Err(classify_code(&code, &message, None, response::back_off_of(msg)));
            }
            match &mut batch.failure {
                Some(f) if f.code == code => f.subscription_ids.extend(ids),
                Some(_) => return Err(protocol("one envelope with two different subscription errors")),
                None => batch.failure = Some(StreamFailure { code, message, subscription_ids: ids }),
            }
        } else {
            response::check_class(msg, None)?;
        }
        for list in either(msg, "Notifications") {
            for n in either(&list, "Notification") {
                batch.notifications.push(notification_of(&n)?);
            }
        }
        if let Some(status) = msg.child_text(MESSAGES, "ConnectionStatus") {
            batch.status = Some(match status.trim() {
                "OK" => ConnectionStatus::Ok,
                "Closed" => ConnectionStatus::Closed,
                other => return Err(protocol(format!("ConnectionStatus `{other}`"))),
            });
        }
    }
    Ok(batch)
}

/// The `GetStreamingEventsResponse` element of one envelope (emulator side; schema order:
/// `Notifications`, `ErrorSubscriptionIds`, `ConnectionStatus`).
pub fn response_element(batch: &StreamBatch) -> Element {
    let mut msgs = Vec::new();
    if let Some(f) = &batch.failure {
        msgs.push(
            m("GetStreamingEventsResponseMessage")
                .attr("ResponseClass", "Error")
                .child(m("MessageText").text(f.message.as_str()))
                .child(m("ResponseCode").text(f.code.as_str()))
                .child(m("DescriptiveLinkKey").text("0"))
                .child(
                    m("ErrorSubscriptionIds")
                        .children(f.subscription_ids.iter().map(|i| m("SubscriptionId").text(i.as_str()))),
                ),
        );
    }
    if !batch.notifications.is_empty() || batch.status.is_some() || batch.failure.is_none() {
        let notifications = (!batch.notifications.is_empty())
            .then(|| m("Notifications").children(batch.notifications.iter().map(notification_element)));
        msgs.push(
            m("GetStreamingEventsResponseMessage")
                .attr("ResponseClass", "Success")
                .child(m("ResponseCode").text("NoError"))
                .child_opt(notifications)
                .child_opt(batch.status.map(|s| m("ConnectionStatus").text(s.as_str()))),
        );
    }
    m("GetStreamingEventsResponse").child(m("ResponseMessages").children(msgs))
}

/// Cuts a chunked streaming answer into complete SOAP envelopes as bytes arrive: an envelope is
/// complete at the end tag of its root element (whatever its prefix); an optional `<?xml …?>`
/// declaration and whitespace between envelopes are allowed. Each envelope (and anything still open)
/// is held to `limit` bytes.
#[derive(Debug)]
pub struct EnvelopeSplitter {
    buf: Vec<u8>,
    limit: usize,
    scanned: usize,
}

impl EnvelopeSplitter {
    /// A splitter holding each envelope to `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { buf: Vec::new(), limit, scanned: 0 }
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete envelope, if one is there; more bytes are needed otherwise.
    pub fn next_envelope(&mut self) -> Result<Option<String>, EwsError> {
        let Some(begin) = self.buf.iter().position(|b| !b.is_ascii_whitespace()) else {
            self.buf.clear();
            self.scanned = 0;
            return Ok(None);
        };
        let mut pos = begin;
        // Declarations, processing instructions and comments before the root element.
        loop {
            let rest = &self.buf[pos..];
            let end = if rest.starts_with(b"<?") {
                find(rest, b"?>").map(|e| e + 2)
            } else if rest.starts_with(b"<!--") {
                find(rest, b"-->").map(|e| e + 3)
            } else {
                break;
            };
            match end {
                Some(e) => {
                    pos += e;
                    pos += self.buf[pos..].iter().take_while(|b| b.is_ascii_whitespace()).count();
                }
                None => return self.incomplete(),
            }
        }
        let rest = &self.buf[pos..];
        if rest.is_empty() {
            return self.incomplete();
        }
        if rest[0] != b'<' {
            return Err(protocol("the streaming answer holds text outside a SOAP envelope"));
        }
        let name_len =
            rest[1..].iter().take_while(|b| !b.is_ascii_whitespace() && **b != b'>' && **b != b'/').count();
        if name_len + 1 == rest.len() {
            return self.incomplete();
        }
        let name = String::from_utf8_lossy(&rest[1..=name_len]).into_owned();
        if name.rsplit(':').next() != Some("Envelope") {
            return Err(protocol(format!("the streaming answer holds <{name}>, not a SOAP envelope")));
        }
        let closing = format!("</{name}");
        let from = self.scanned.max(pos);
        let mut search = from;
        while let Some(at) = find(&self.buf[search..], closing.as_bytes()) {
            let after = search + at + closing.len();
            let tail = &self.buf[after..];
            let ws = tail.iter().take_while(|b| b.is_ascii_whitespace()).count();
            match tail.get(ws) {
                Some(b'>') => {
                    let end = after + ws + 1;
                    if end - begin > self.limit {
                        return Err(EwsError::TooLarge { limit: self.limit });
                    }
                    let doc = String::from_utf8_lossy(&self.buf[begin..end]).into_owned();
                    self.buf.drain(..end);
                    self.scanned = 0;
                    return Ok(Some(doc));
                }
                Some(_) => search = after,
                None => break,
            }
        }
        // Resume the search where a closing tag could still begin.
        self.scanned = self.buf.len().saturating_sub(closing.len() + 64).max(pos);
        self.incomplete()
    }

    fn incomplete(&self) -> Result<Option<String>, EwsError> {
        if self.buf.len() > self.limit {
            return Err(EwsError::TooLarge { limit: self.limit });
        }
        Ok(None)
    }

    /// Whether bytes of an unfinished envelope are held (the answer must not end here).
    pub fn holds_partial(&self) -> bool {
        self.buf.iter().any(|b| !b.is_ascii_whitespace())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::{Event, EventKind};

    fn envelope(batch: &StreamBatch) -> String {
        Element::new(crate::xml::SOAP, "Envelope")
            .child(Element::new(crate::xml::SOAP, "Body").child(response_element(batch)))
            .to_document()
    }

    fn created(id: &str, wm: &str) -> Notification {
        Notification {
            subscription_id: "s-1".into(),
            previous_watermark: None,
            more_events: false,
            events: vec![Event {
                kind: EventKind::Created,
                watermark: Some(wm.into()),
                timestamp: None,
                item_id: Some(crate::model::ItemId::new(id, "ck")),
                folder_id: None,
                parent_folder_id: Some("calendar".into()),
                unread_count: None,
                old_item_id: None,
                old_parent_folder_id: None,
            }],
        }
    }

    #[test]
    fn timeouts_outside_one_to_thirty_minutes_are_refused() {
        assert!(ConnectionTimeout::minutes(0).is_err());
        assert!(ConnectionTimeout::minutes(31).is_err());
        assert!(ConnectionTimeout::minutes(300).is_err());
        assert_eq!(ConnectionTimeout::minutes(30).unwrap(), ConnectionTimeout::MAX);
        assert_eq!(ConnectionTimeout::minutes(1).unwrap().get(), 1);
    }

    #[test]
    fn id_lists_are_held_to_one_to_two_hundred() {
        let t = ConnectionTimeout::minutes(5).unwrap();
        assert!(get_streaming_events_request(&[], t).is_err());
        let many: Vec<String> = (0..201).map(|i| format!("s{i}")).collect();
        let err = get_streaming_events_request(&many, t).unwrap_err();
        assert!(err.to_string().contains("at most 200"), "{err}");
        assert!(get_streaming_events_request(&many[..200], t).is_ok());
        assert!(get_streaming_events_request(&[" ".into()], t).is_err());
    }

    #[test]
    fn envelopes_are_cut_as_they_complete_whatever_the_chunking() {
        let a = envelope(&StreamBatch { notifications: vec![created("A", "w1")], ..StreamBatch::default() });
        let b = envelope(&StreamBatch { status: Some(ConnectionStatus::Ok), ..StreamBatch::default() });
        let c = envelope(&StreamBatch { status: Some(ConnectionStatus::Closed), ..StreamBatch::default() });
        let stream = format!("{a}\r\n{b}{c}");
        for chunk in [1, 7, 64, stream.len()] {
            let mut s = EnvelopeSplitter::new(1 << 20);
            let mut out = Vec::new();
            for piece in stream.as_bytes().chunks(chunk) {
                s.push(piece);
                while let Some(doc) = s.next_envelope().unwrap() {
                    out.push(parse_envelope(&doc).unwrap());
                }
            }
            assert!(!s.holds_partial());
            assert_eq!(out.len(), 3, "chunk {chunk}");
            assert_eq!(out[0].notifications, vec![created("A", "w1")]);
            assert_eq!(out[1].status, Some(ConnectionStatus::Ok));
            assert!(out[2].is_closed());
        }
    }

    #[test]
    fn an_envelope_over_the_cap_and_garbage_are_errors() {
        let a = envelope(&StreamBatch { notifications: vec![created("A", "w1")], ..StreamBatch::default() });
        let mut s = EnvelopeSplitter::new(a.len() - 1);
        s.push(a.as_bytes());
        assert!(matches!(s.next_envelope(), Err(EwsError::TooLarge { .. })));
        let mut s = EnvelopeSplitter::new(1 << 20);
        s.push(b"  hello");
        assert!(matches!(s.next_envelope(), Err(EwsError::Protocol { .. })));
        let mut s = EnvelopeSplitter::new(1 << 20);
        s.push(b"<html><body>proxy</body></html>");
        assert!(matches!(s.next_envelope(), Err(EwsError::Protocol { .. })));
        let mut s = EnvelopeSplitter::new(1 << 20);
        s.push(&a.as_bytes()[..a.len() / 2]);
        assert_eq!(s.next_envelope().unwrap(), None);
        assert!(s.holds_partial());
    }

    #[test]
    fn errors_per_subscription_id_and_for_the_connection() {
        let failure = StreamFailure {
            code: "ErrorSubscriptionNotFound".into(),
            message: "gone".into(),
            subscription_ids: vec!["s-9".into()],
        };
        let doc = envelope(&StreamBatch { failure: Some(failure.clone()), ..StreamBatch::default() });
        let batch = parse_envelope(&doc).unwrap();
        assert_eq!(batch.failure, Some(failure.clone()));
        assert!(matches!(failure.error(), EwsError::SubscriptionLost { .. }));
        assert!(batch.notifications.is_empty() && batch.status.is_none());
        // Without ids the error is the connection's.
        let whole = doc.replace(
            "<m:ErrorSubscriptionIds><m:SubscriptionId>s-9</m:SubscriptionId></m:ErrorSubscriptionIds>",
            "",
        );
        assert_ne!(whole, doc);
        assert!(matches!(parse_envelope(&whole), Err(EwsError::SubscriptionLost { .. })));
        assert!(matches!(parse_envelope("<a/>"), Err(EwsError::Protocol { .. })));
    }

    #[test]
    fn the_affinity_cookie_is_found_among_set_cookie_values() {
        let a = Affinity::from_set_cookie([
            "other=1; path=/",
            "X-BackEndOverrideCookie=MBX01~1942; path=/; secure",
        ]);
        assert_eq!(a, Some(Affinity::new("MBX01~1942")));
        assert_eq!(a.unwrap().cookie_header(), "X-BackEndOverrideCookie=MBX01~1942");
        assert_eq!(Affinity::from_set_cookie(["X-BackEndOverrideCookie=; path=/"]), None);
    }
}
