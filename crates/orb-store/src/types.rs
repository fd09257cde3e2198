//! Rows of the store other than bookings and jobs.

use chrono::{DateTime, Utc};
use orb_core::{
    BookingId, BookingRecord, CorrelationId, EmailAddress, RoomId, RoomMailbox, SeriesId, Side, TenantId,
    TenantName, TimeZoneName, TopdeskLocationId,
};
use serde::{Deserialize, Serialize};

/// One customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// Id.
    pub id: TenantId,
    /// Short, URL-safe name.
    pub name: TenantName,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A room mapping to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRoom {
    /// Exchange room mailbox.
    pub mailbox: RoomMailbox,
    /// TOPdesk location (or reservable asset) id.
    pub topdesk_location_id: TopdeskLocationId,
    /// Name shown in the portal.
    pub display_name: Option<String>,
}

/// A room mapping: Exchange room mailbox ↔ TOPdesk location. Only enabled rooms are synced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Room {
    /// Id.
    pub id: RoomId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Exchange room mailbox (the stable key on the Exchange side).
    pub mailbox: RoomMailbox,
    /// TOPdesk location id.
    pub topdesk_location_id: TopdeskLocationId,
    /// Name shown in the portal.
    pub display_name: Option<String>,
    /// Whether the room is synced.
    pub enabled: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A recurring series; its occurrences are bookings with this series id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Series {
    /// Id.
    pub id: SeriesId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Room of the series (occurrences may move elsewhere as exceptions).
    pub room_id: RoomId,
    /// Organizer of the series.
    pub organizer: EmailAddress,
    /// Graph `iCalUId` of the series master.
    pub ical_uid: Option<String>,
    /// Graph id of the series master in the organizer's (or room's) calendar.
    pub exchange_master_event_id: Option<String>,
    /// TOPdesk's series id, once the series exists there.
    pub topdesk_series_id: Option<String>,
    /// The recurrence as Graph gives it (`patternedRecurrence` JSON); never the body.
    pub pattern: serde_json::Value,
    /// The recurrence's time zone.
    pub time_zone: TimeZoneName,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A timeline entry to append to a booking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewBookingEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened, e.g. `observed`, `planned`, `written`, `failed`, `conflict`.
    pub kind: String,
    /// Which side it concerns, if one.
    pub side: Option<Side>,
    /// Details (never a body; subject only as the privacy policy allows).
    pub detail: serde_json::Value,
}

/// A stored timeline entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BookingEvent {
    /// Sequence number (increasing).
    pub id: i64,
    /// Booking.
    pub booking_id: BookingId,
    /// Correlation id of the work that wrote it.
    pub correlation_id: CorrelationId,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: String,
    /// Which side it concerns.
    pub side: Option<Side>,
    /// Details.
    pub detail: serde_json::Value,
}

/// Ways to find a booking by what a side knows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookingKey<'a> {
    /// The TOPdesk reservation id.
    TopdeskReservation(&'a str),
    /// A Graph event id, of the organizer's or the room's copy.
    ExchangeEvent(&'a str),
    /// An occurrence by `iCalUId` (and original start, for occurrences of a series).
    ICalUid {
        /// Graph `iCalUId`.
        ical_uid: &'a str,
        /// Original start of the occurrence; `None` for single meetings.
        original_start: Option<DateTime<Utc>>,
    },
}

/// Which bookings to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookingFilter {
    /// Only this room.
    pub room: Option<RoomId>,
    /// Only this series.
    pub series: Option<SeriesId>,
    /// Only bookings ending after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only bookings starting before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Include cancelled bookings.
    pub include_cancelled: bool,
    /// Only bookings this person organizes (the current organizer).
    pub organizer: Option<EmailAddress>,
    /// Only bookings that had trouble: a failure count above 0, or the status `failed` on either side.
    pub failed_only: bool,
    /// At most this many bookings; `None`: all.
    pub limit: Option<u32>,
    /// Skip this many bookings first (paging, in the list's order).
    pub offset: u32,
}

/// An audit entry to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// Tenant concerned; `None` for operator-wide actions (key rotation).
    pub tenant_id: Option<TenantId>,
    /// When.
    pub at: DateTime<Utc>,
    /// Who (user e-mail, `cli`, `system`).
    pub actor: String,
    /// What, e.g. `secret.set`, `room.disable`.
    pub action: String,
    /// On what (a name or id; never a secret value).
    pub target: String,
    /// From which IP, for portal actions.
    pub ip: Option<String>,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Sequence number.
    pub id: i64,
    /// Tenant.
    pub tenant_id: Option<TenantId>,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// From where.
    pub ip: Option<String>,
}

/// A secret as stored: ciphertext sealed by the crypto layer, with the id of the key that sealed it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecretRow {
    /// Tenant.
    pub tenant_id: TenantId,
    /// Name, e.g. `graph.client_secret`.
    pub name: String,
    /// Id of the master key that sealed it.
    pub key_id: String,
    /// AEAD nonce.
    pub nonce: Vec<u8>,
    /// Ciphertext with tag.
    pub ciphertext: Vec<u8>,
    /// Last written.
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for SealedSecretRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecretRow")
            .field("tenant_id", &self.tenant_id)
            .field("name", &self.name)
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// What may be shown about a secret: that it exists, under which key, since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretMeta {
    /// Name.
    pub name: String,
    /// Sealing key id.
    pub key_id: String,
    /// Last written.
    pub updated_at: DateTime<Utc>,
}

/// A change-notification subscription ORB holds for a room mailbox: a Graph subscription, or an EWS push
/// subscription (Exchange Server on-premises). The secret itself is never stored: only its SHA-256, which
/// the intake compares (in constant time) with the hash of what arrives: Graph's `clientState`, or for EWS
/// the `k` query value of the callback URL ORB gave when subscribing (Exchange has no clientState).
#[derive(Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    /// The subscription id (Graph's, or EWS's `SubscriptionId`).
    pub id: String,
    /// Tenant.
    pub tenant_id: TenantId,
    /// The room whose mailbox it watches.
    pub room_id: RoomId,
    /// Graph resource, e.g. `users/room@contoso.com/events`.
    pub resource: String,
    /// SHA-256 of the subscription's `clientState` (EWS: of the callback URL's `k` value).
    pub client_state_hash: Vec<u8>,
    /// Rich (encrypted resource data) or basic notifications.
    pub rich: bool,
    /// Id of the encryption certificate the subscription uses (rich only).
    pub encryption_certificate_id: Option<String>,
    /// When Graph ends it unless renewed.
    pub expires_at: DateTime<Utc>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed (renewal, certificate switch).
    pub updated_at: DateTime<Utc>,
    /// EWS: the last watermark received (the engine writes it after handling a notification, and resumes
    /// or re-subscribes from it). `None` for Graph, and for an EWS subscription that has received nothing.
    pub watermark: Option<String>,
}

impl std::fmt::Debug for SubscriptionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionRow")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("room_id", &self.room_id)
            .field("resource", &self.resource)
            .field("rich", &self.rich)
            .field("encryption_certificate_id", &self.encryption_certificate_id)
            .field("expires_at", &self.expires_at)
            .field("watermark", &self.watermark)
            .finish_non_exhaustive()
    }
}

/// Where an inbox item came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum InboxSource {
    /// A Graph change notification (`POST /hooks/graph/{tenant}`).
    Graph,
    /// A Graph lifecycle notification (`POST /hooks/graph/{tenant}/lifecycle`).
    GraphLifecycle,
    /// A TOPdesk push hint (`POST /hooks/topdesk/{tenant}`).
    Topdesk,
    /// An EWS push notification (`POST /hooks/ews/{tenant}`), one `Notification` per item; the payload is
    /// a [`crate::jobs::EwsNotificationItem`].
    Ews,
}

impl InboxSource {
    /// Stored text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Graph => "graph",
            Self::GraphLifecycle => "graph-lifecycle",
            Self::Topdesk => "topdesk",
            Self::Ews => "ews",
        }
    }
}

impl std::str::FromStr for InboxSource {
    type Err = crate::StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "graph" => Ok(Self::Graph),
            "graph-lifecycle" => Ok(Self::GraphLifecycle),
            "topdesk" => Ok(Self::Topdesk),
            "ews" => Ok(Self::Ews),
            other => {
                Err(crate::StoreError::Corrupt { what: "inbox source".into(), reason: format!("{other:?}") })
            }
        }
    }
}

/// Something a webhook received, to keep durably before answering `202`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInboxItem {
    /// Tenant.
    pub tenant_id: TenantId,
    /// Which endpoint.
    pub source: InboxSource,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// The sender's address.
    pub remote_ip: Option<String>,
    /// The item as received (one notification, or one push hint). Rich content stays encrypted.
    pub payload: serde_json::Value,
}

/// A stored inbox item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboxItem {
    /// Sequence number.
    pub id: i64,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Which endpoint.
    pub source: InboxSource,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// The sender's address.
    pub remote_ip: Option<String>,
    /// The item as received.
    pub payload: serde_json::Value,
    /// When a worker finished with it.
    pub processed_at: Option<DateTime<Utc>>,
}

/// A tenant's non-secret settings: one JSON document per tenant, versioned for optimistic concurrency. The
/// store keeps the document as opaque text (byte-exact); parsing and validation belong to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantSettingsRow {
    /// Tenant.
    pub tenant_id: TenantId,
    /// The settings document (JSON text, stored as given).
    pub document: String,
    /// 1 after the first put, + 1 on every put since.
    pub version: i64,
    /// When the last put happened.
    pub updated_at: DateTime<Utc>,
}

/// An encryption certificate for Graph rich notifications, installation-wide (not per tenant). The private
/// key is stored only sealed (an AES-GCM envelope made by the caller under the master key `key_id`); this
/// crate never sees it in clear, and `Debug` shows only the sealed key's length.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKeyRow {
    /// The certificate id (what subscriptions name as `encryptionCertificateId`).
    pub id: String,
    /// The certificate, DER.
    pub certificate_der: Vec<u8>,
    /// The certificate's thumbprint.
    pub thumbprint: String,
    /// Start of the certificate's validity.
    pub not_before: DateTime<Utc>,
    /// End of the certificate's validity.
    pub not_after: DateTime<Utc>,
    /// Id of the master key that sealed the private key.
    pub key_id: String,
    /// The sealed private key (envelope bytes, never plaintext).
    pub sealed_private_key: Vec<u8>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for EncryptionKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionKeyRow")
            .field("id", &self.id)
            .field("thumbprint", &self.thumbprint)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("key_id", &self.key_id)
            .field("certificate_der_len", &self.certificate_der.len())
            .field("sealed_private_key_len", &self.sealed_private_key.len())
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// What a retention purge deleted (or, in a dry run, would delete), per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PurgeCounts {
    /// Inbox items processed before the jobs cutoff.
    pub inbox: u64,
    /// Done jobs finished before the jobs cutoff.
    pub done_jobs: u64,
    /// Dead jobs (never retried nor dismissed) that died before the bookings cutoff.
    pub dead_jobs: u64,
    /// Booking records that ended before the bookings cutoff.
    pub bookings: u64,
    /// Timeline entries of those bookings.
    pub booking_events: u64,
    /// Series rows left without bookings and unchanged since the bookings cutoff.
    pub series: u64,
    /// Audit rows written before the audit cutoff.
    pub audit: u64,
}

impl PurgeCounts {
    /// Rows deleted in all.
    pub fn total(&self) -> u64 {
        self.inbox
            + self.done_jobs
            + self.dead_jobs
            + self.bookings
            + self.booking_events
            + self.series
            + self.audit
    }
}

impl std::fmt::Display for PurgeCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} inbox item(s), {} done job(s), {} dead job(s), {} booking(s), {} timeline entr(ies), \
             {} series, {} audit row(s)",
            self.inbox,
            self.done_jobs,
            self.dead_jobs,
            self.bookings,
            self.booking_events,
            self.series,
            self.audit
        )
    }
}

/// Everything a tenant's store holds about one person (an export for a data-subject request).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PersonData {
    /// Records where the person is organizer, original organizer, booker or participant (or that name
    /// them in the subject or location text).
    pub bookings: Vec<BookingRecord>,
    /// The timelines of those records, and every other timeline entry that names the person.
    pub booking_events: Vec<BookingEvent>,
    /// Series the person organizes.
    pub series: Vec<Series>,
    /// Audit rows that name the person (as actor or in the target).
    pub audit: Vec<AuditEntry>,
    /// Jobs whose payload or last error names the person.
    pub jobs: Vec<crate::Job>,
    /// Inbox items whose payload names the person (encrypted rich content cannot be read, so it cannot
    /// name anyone).
    pub inbox: Vec<InboxItem>,
}

/// What an erasure changed, per table (rows whose text named the person).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ErasureCounts {
    /// Booking records.
    pub bookings: u64,
    /// Series rows.
    pub series: u64,
    /// Timeline entries.
    pub booking_events: u64,
    /// Audit rows.
    pub audit: u64,
    /// Jobs.
    pub jobs: u64,
    /// Inbox items.
    pub inbox: u64,
}

impl ErasureCounts {
    /// Rows changed in all.
    pub fn total(&self) -> u64 {
        self.bookings + self.series + self.booking_events + self.audit + self.jobs + self.inbox
    }
}

impl std::fmt::Display for ErasureCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} booking(s), {} series, {} timeline entr(ies), {} audit row(s), {} job(s), {} inbox item(s)",
            self.bookings, self.series, self.booking_events, self.audit, self.jobs, self.inbox
        )
    }
}
