//! # orb-ews
//!
//! ORB's typed client for Exchange Web Services (SOAP 1.1) against Exchange Server 2016 / 2019 / SE
//! on-premises, and the EWS XML shared with the emulator (`orb-emulators`' `ews` face).
//!
//! - [`xml`]: a namespace-aware element tree over `quick-xml` (matched by namespace URI + local name,
//!   never by prefix; written with fixed prefixes in the order children were added).
//! - [`request`]: pure builders of every request ORB sends (schema `xs:sequence` order; never the body).
//! - [`response`]: pure readers of the answers, faults and per-message `ResponseClass`es.
//! - [`error`]: [`EwsError`] with [`EwsError::is_retryable`] and [`EwsError::retry_after`].
//! - [`push`]: the push-notification body ORB receives and its `SendNotificationResult` answer.
//! - [`streaming`]: streaming subscriptions (outbound only): the requests, the envelope splitter and
//!   reader of the long `GetStreamingEvents` answer, the affinity cookie; the I/O is
//!   [`EwsClient::stream_events`].
//! - [`series`]: `Recurrence` (typed, converted to orb-core's expansion), `OccurrenceItemId` /
//!   `RecurringMasterItemId` addressing, and the occurrence summaries of a master.
//! - [`model`]: the typed values; [`model::NewMeeting`] is a meeting with a room and people
//!   (`Resources`, `RequiredAttendees`, invitations sent) or, without a room, a plain appointment ORB
//!   writes straight into a room's calendar ("room only", `SendToNone`); [`model::MeetingChange`]
//!   replaces people or the room as a whole, or drops the room (`DeleteItemField` of
//!   `calendar:Resources`: the room gets a cancellation).
//! - [`ntlm`]: the NTLM message codec (NTLMv2; pure functions, also used by the emulator).
//! - [`client`]: [`EwsClient`] over rustls (reqwest for Basic and bearer, connections of its own that
//!   NTLM authenticates for [`Auth::Ntlm`]): calendar reads and meeting writes, finding a
//!   meeting again by ORB's match id ([`EwsClient::find_by_match_id`]) or by its `UID` around a known
//!   time ([`EwsClient::find_by_uid`]), and the plain-text mails ORB sends ([`EwsClient::send_mail`]).
//!
//! ## Invariants
//! - Every request carries `RequestServerVersion Exchange2013_SP1`, `ExchangeImpersonation` with the
//!   target's `PrimarySmtpAddress`, `X-AnchorMailbox` = that mailbox and `client-request-id` = ORB's
//!   correlation id.
//! - No request reads a body: no body property (`item:Body`, `UniqueBody`, …) where it would be read,
//!   no base shape other than `IdOnly` ([`request::asks_for_body`], which the emulator logs for every
//!   request); created calendar items carry no `Body`. The one body ORB writes is its own plain text in
//!   a mail it sends (`t:Message`, [`EwsClient::send_mail`]), never a person's (tests in [`request`]).
//! - Bad input is [`EwsError::Invalid`] before anything is sent: people without a room, a person twice,
//!   the room among the people, a new room together with dropping the rooms
//!   ([`model::NewMeeting::validate`], [`model::MeetingChange::validate`]).
//! - Updates are conditional: the change key ORB read and `ConflictResolution="NeverOverwrite"`, so a
//!   person's change in Outlook is never overwritten; a conflict is [`EwsError::Changed`].
//! - Credentials never cross plain HTTP unless [`EwsConfig::allow_plain_http`] (emulator, tests); no
//!   redirect is followed; answers are capped at [`EwsConfig::max_response_bytes`]; secrets are never
//!   printed (`Debug` redacts them).
//! - ORB's match id is the extended property ([`model::ORB_PROPERTY_SET_ID`],
//!   [`model::ORB_MATCH_PROPERTY_NAME`], `String`) — the same MAPI named property the Graph client uses.
//!
//! ## Not in this slice
//! - Kerberos (SPNEGO) inside `Negotiate`: NTLM is sent raw, as `NTLM` or inside `Negotiate`.
//! - Pull subscriptions, `GetUserAvailability`, `ResolveNames`.
//!
//! ## Unverified points of the reference (ews.md Uxx) this code assumes, and how each is made safe
//! - **U1/U10** (push callback details, what counts as a failed delivery): [`push::parse_notification`]
//!   reads the body by namespace + local name, accepts `Notification` in either EWS namespace, and
//!   refuses anything else as a protocol error, so the intake can answer non-200 without changing
//!   anything; the emulator counts non-200, an unreadable answer and a transport error as failures.
//! - **U2** (`Exchange2013_SP1` on SE): the lowest version that has every operation used; an
//!   `ErrorInvalidServerVersion` is a permanent [`EwsError::Rejected`] naming the code.
//! - **U4** (Basic enabled on the EWS virtual directory) and **U6** (the error when an access policy
//!   blocks the client): a 401 is [`EwsError::Unauthorized`] telling the operator to check the allowed
//!   authentication methods; any other refusal keeps Exchange's code in [`EwsError::Rejected`]; the
//!   `User-Agent` is configurable for allow lists.
//! - **U8** (`Restriction` with `CalendarView`): never sent together; the match id is read with GetItem
//!   and looked up with `IndexedPageItemView` + `Restriction` ([`EwsClient::find_by_match_id`]). The
//!   emulator refuses the pair with `ErrorInvalidRestriction` ("Restrictions and sort order may not be
//!   specified for a CalendarView.", the text users report from Exchange), the strict case.
//! - **U5** (OAuth on-prem): bearer auth is offered but Basic is the default path in tests.
//! - **U3** (Extended Protection): over TLS the NTLM AUTHENTICATE carries `MsvAvChannelBindings`
//!   (`tls-server-end-point` of the server's certificate, [`ntlm::channel_bindings`]); built to MS-NLMP
//!   and RFC 5929, not tried against a real Exchange yet. Without EP the extra AV pair is ignored.
//! - **U9** (room copy shares the `UID`, not the extended property): [`model::CalendarItem`] reads `UID`
//!   and the match id separately; callers correlate room copies by `UID`, never expecting the property
//!   on the room's copy ([`EwsClient::find_by_uid`] finds the organizer's item from a room copy's
//!   `UID`). The emulator models exactly this.
//! - **U12** (exception edits as master `Update`s in SyncFolderItems): the reader keeps each change's
//!   `CalendarItemType`, so a master's update is visible as such; series handling is the next slice's.
//! - **U13** (how strictly element order is enforced): requests are written in schema order anyway and
//!   the emulator refuses out-of-order `CalendarItem` children with `ErrorSchemaValidation`.
//! - **U14** (`Retry-After` on 503): honoured when present; without it a 503 is plain transient.
//! - **U17** (cancelled meetings in the room calendar): readers take `IsCancelled` as given and never
//!   infer a cancellation from a missing item alone — also after a room is dropped from a meeting
//!   ([`model::MeetingChange::remove_rooms`]): its copy may stay cancelled or disappear.
//! - **U19** (addresses with routing type `EX`): addresses are kept as text; nothing assumes SMTP.
//! - **U20** (occurrence ids from a `CalendarView` accepted directly): ORB can address an occurrence
//!   either way ([`series::ItemRef`]); `OccurrenceItemId` (master + index) is the documented form, and
//!   the emulator accepts both. `UID` is asked for only with GetItem, never from a `CalendarView` or
//!   in a restriction (EWS documents none on `calendar:UID`): [`EwsClient::find_by_uid`] reads a
//!   window's items with GetItem (2–3 calls).
//!
//! ## Must not depend on
//! orb-engine, orb-store, orb-web (and no emulator: the emulator depends on this crate, not the reverse).

pub mod client;
pub mod error;
pub mod model;
pub mod ntlm;
pub mod push;
pub mod request;
pub mod response;
pub mod series;
pub mod streaming;
pub mod xml;

pub use client::{Auth, EwsClient, EwsConfig, Target};
pub use error::EwsError;
