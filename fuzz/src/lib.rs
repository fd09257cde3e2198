//! ORB's fuzz checks: one function per cargo-fuzz target (`fuzz_targets/*.rs` are one-line wrappers), so
//! the same checks run from the fuzzer, from `cargo test` over the committed corpus and regressions
//! (`tests/replay.rs`), and from a debugger.
//!
//! Every check feeds untrusted bytes to a parser ORB runs on data from outside (a webhook POST, a Graph or
//! TOPdesk answer, an admin's settings, an EWS SOAP answer) and asserts more than "no panic" where a
//! property is cheap to state: what ORB writes it reads back equal (round trips), what ORB encrypts opens
//! to the same bytes, what the intake accepts matches what it was told to accept.
//!
//! Fixtures are fixed: Microsoft's rich-notification test vector (`testdata/graph-vectors/`, compiled in)
//! is the encryption certificate, its RSA key also signs the validation tokens of the seed corpus (see
//! `examples/seeds.rs`), and `now` is [`NOW`]. Nothing reads the clock or the file system at run time.
//!
//! Must not depend on: the store, the web layer, anything doing I/O.

use std::fmt::Debug;
use std::sync::LazyLock;

use chrono::{DateTime, TimeZone, Utc};
use orb_crypto::{
    CertificateRing, EncryptedContent, EncryptionCertificate, Jwks, NotificationCertificate,
    NotificationPrivateKey, ValidationTokenExpectations, ValidationTokenSigner, encrypt_notification_content,
};
use orb_graph::model::ChangeNotification;
use orb_graph::notifications as graph_hooks;
use secrecy::SecretString;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The subscription the intake knows in [`graph_notification`]; every other id is unknown.
pub const SUBSCRIPTION_ID: &str = "00000000-0000-0000-0000-000000000001";
/// That subscription's `clientState`.
pub const CLIENT_STATE: &str = "synthetic-client-state";
/// ORB's app id the validation tokens must be addressed to.
pub const APP_ID: &str = "00000000-0000-0000-0000-00000000a99d";
/// The tenant of the synthetic notification collection.
pub const TENANT_ID: &str = "8afd02d6-ebdd-4270-a515-c749898ea5c5";
/// The key id of the fixed validation-token signer.
pub const SIGNING_KID: &str = "orb-fuzz-signing-key";

/// The fixed "now" of every check: 2026-07-01T12:00:00Z.
pub static NOW: LazyLock<DateTime<Utc>> =
    LazyLock::new(|| Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).single().expect("a valid fixed instant"));

const VECTOR_KEY_PEM: &str =
    include_str!("../../testdata/graph-vectors/msgraph-core-rich-notification/derived/private-key.pkcs8.pem");
const VECTOR_CERT_PEM: &str =
    include_str!("../../testdata/graph-vectors/msgraph-core-rich-notification/derived/certificate.pem");
const VECTOR_CONTENT_JSON: &str =
    include_str!("../../testdata/graph-vectors/msgraph-core-rich-notification/encrypted-content.json");

/// What the Graph checks share: the certificate ring, the JWKS and the token expectations.
pub struct GraphFixture {
    /// Microsoft's vector certificate (id as in the vector) and, current, a fresh RSA-2048 one for the
    /// encrypt → decrypt round trip (cheaper to open than the vector's RSA-4096).
    pub ring: CertificateRing,
    /// The signer of the seed corpus' validation tokens (the vector's RSA key, so it is the same in every
    /// run).
    pub signer: ValidationTokenSigner,
    /// The signer's JWKS.
    pub jwks: Jwks,
    /// ORB's app, the synthetic tenant.
    pub expectations: ValidationTokenExpectations,
}

/// The Graph fixture, built once per process.
pub static GRAPH: LazyLock<GraphFixture> = LazyLock::new(|| {
    let key = vector_key();
    let pkcs8 = key.to_pkcs8_der().expect("the vector key exports as PKCS#8");
    let signer =
        ValidationTokenSigner::from_pkcs8_der(SIGNING_KID, secrecy::ExposeSecret::expose_secret(&pkcs8))
            .expect("the vector key signs");
    let jwks = signer.jwks();
    let content: EncryptedContent = serde_json::from_str(VECTOR_CONTENT_JSON).expect("the vector parses");
    let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).single().expect("a valid date");
    let vector = EncryptionCertificate::from_parts(
        content.encryption_certificate_id,
        vector_certificate(),
        at(2021, 2, 20),
        at(2023, 2, 20),
        key,
    )
    .expect("the vector key belongs to its certificate");
    let fresh = EncryptionCertificate::generate(
        NotificationPrivateKey::generate().expect("an RSA key"),
        at(2026, 1, 1),
        at(2027, 1, 1),
    )
    .expect("a fresh certificate");
    let ring = CertificateRing::from_entries([vector, fresh]).expect("two distinct ids");
    GraphFixture { ring, signer, jwks, expectations: ValidationTokenExpectations::new(APP_ID, TENANT_ID) }
});

fn vector_key() -> NotificationPrivateKey {
    NotificationPrivateKey::from_pkcs8_pem(VECTOR_KEY_PEM).expect("the vector key parses")
}

fn vector_certificate() -> NotificationCertificate {
    let body: String = VECTOR_CERT_PEM.lines().filter(|l| !l.starts_with("-----")).collect();
    NotificationCertificate::from_base64(&body).expect("the vector certificate parses")
}

/// Target `graph_notification`. The first byte picks the path:
/// - even: the rest is a webhook POST body, run through what the intake and the worker do with it:
///   parse, screen (one known subscription), validation tokens against [`GraphFixture::jwks`] at [`NOW`],
///   then decryption of every item with the ring (the worker decrypts only after the tokens validate; the
///   fuzzer decrypts regardless, so the decrypt path sees everything);
/// - odd: the rest is a resource's plaintext, encrypted as Graph does for the ring's current certificate
///   and decrypted again: it must open to exactly the same bytes.
pub fn graph_notification(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 { graph_envelope(rest) } else { graph_round_trip(rest) }
}

fn graph_envelope(body: &[u8]) {
    let fx = &*GRAPH;
    // The handshake reads the query string; any text is a query string.
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = graph_hooks::validation_token(Some(text));
    }
    let Ok(collection) = graph_hooks::parse_notification_collection(body) else { return };
    // The intake pairs the typed items with the raw JSON ones and refuses the POST when they differ. They
    // can: serde skips an unknown field's string without checking its UTF-8, so a body with invalid UTF-8
    // there parses typed but not as a `Value` (found by this target; the intake answers it 400).
    let Ok(raw) = serde_json::from_slice::<serde_json::Value>(body) else { return };
    assert!(raw.is_object(), "a parsed collection is a JSON object");

    let screened = graph_hooks::screen_notifications(&collection, |id| {
        (id == SUBSCRIPTION_ID).then(|| SecretString::from(CLIENT_STATE))
    });
    assert_eq!(screened.len(), collection.value.len(), "one verdict per item");
    for s in &screened {
        if s.verdict.is_ok() {
            assert_eq!(s.item.subscription_id.as_deref(), Some(SUBSCRIPTION_ID));
            assert_eq!(s.item.client_state.as_deref(), Some(CLIENT_STATE));
        }
    }

    let needs = graph_hooks::needs_validation_tokens(&collection);
    if let Ok(valid) = graph_hooks::check_validation_tokens(&collection, &fx.jwks, &fx.expectations, *NOW) {
        assert_eq!(valid.is_empty(), !needs, "tokens are validated exactly when needed");
        for tenant in collection.value.iter().filter_map(|i| i.tenant_id.as_deref()) {
            if needs {
                assert!(valid.iter().any(|v| v.tenant_id.eq_ignore_ascii_case(tenant)), "tenant covered");
            }
        }
    }

    for item in &collection.value {
        let _ = format!("{item:?}"); // the redacting Debug must not panic either
        if let Ok(Some(resource)) = graph_hooks::decrypt_resource(item, &fx.ring) {
            let event = graph_hooks::decrypt_event(item, &fx.ring);
            assert_eq!(
                event.is_ok(),
                serde_json::from_value::<orb_graph::model::Event>(resource).is_ok(),
                "decrypt_event is decrypt_resource read as an event"
            );
        }
    }
}

fn graph_round_trip(plain: &[u8]) {
    let fx = &*GRAPH;
    let current = fx.ring.current().expect("the ring has a current certificate");
    let content =
        encrypt_notification_content(plain, current.certificate(), current.id()).expect("any bytes encrypt");
    assert_eq!(fx.ring.decrypt(&content).expect("what was encrypted opens"), plain);
    let item = ChangeNotification {
        encrypted_content: Some(graph_hooks::wire_encrypted_content(content)),
        ..ChangeNotification::default()
    };
    let resource = graph_hooks::decrypt_resource(&item, &fx.ring);
    assert_eq!(resource.is_ok(), serde_json::from_slice::<serde_json::Value>(plain).is_ok());
    let _ = graph_hooks::decrypt_event(&item, &fx.ring);
}

/// Reads `data` as `T`; when it parses, checks the written form reads back: `T` → JSON → `T` gives an
/// equal value (`exact`) and the JSON is stable (written again, it is the same text). Returns the value.
pub fn json_round_trip<T>(data: &[u8], exact: bool) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let value: T = serde_json::from_slice(data).ok()?;
    let written = serde_json::to_string(&value).expect("a parsed value serialises");
    let back: T = serde_json::from_str(&written)
        .unwrap_or_else(|e| panic!("ORB cannot read what it wrote ({e}): {written}"));
    if exact {
        assert_eq!(value, back, "the value changed through its own JSON: {written}");
    }
    let again = serde_json::to_string(&back).expect("a parsed value serialises");
    assert_eq!(written, again, "the written JSON is not stable");
    Some(value)
}

/// Target `graph_models`: bytes as each of orb-graph's `model` types ORB reads from Graph (events and
/// their pages, rooms, subscriptions, messages, notifications, errors, tokens, batches), round-tripped;
/// an event's times and recurrence are also converted the way the engine does.
pub fn graph_models(data: &[u8]) {
    use orb_graph::model::*;
    if let Some(event) = json_round_trip::<Event>(data, true) {
        check_event(&event);
    }
    if let Some(page) = json_round_trip::<Collection<Event>>(data, true) {
        page.value.iter().for_each(check_event);
    }
    json_round_trip::<Collection<Room>>(data, true);
    json_round_trip::<Collection<Subscription>>(data, true);
    json_round_trip::<Subscription>(data, true);
    json_round_trip::<Message>(data, true);
    json_round_trip::<ChangeNotificationCollection>(data, true);
    json_round_trip::<ErrorResponse>(data, true);
    json_round_trip::<TokenResponse>(data, true);
    json_round_trip::<TokenErrorResponse>(data, true);
    json_round_trip::<BatchResponse>(data, true);
}

fn check_event(event: &orb_graph::model::Event) {
    let start = event.start.as_ref().map(|s| s.to_utc());
    let _ = event.end.as_ref().map(|e| e.to_utc());
    if let Some(rec) = &event.recurrence
        && let Ok(core) = rec.to_core()
    {
        // What ORB writes back for a series must say the same thing.
        let again = orb_graph::model::PatternedRecurrence::from_core(&core);
        assert_eq!(again.to_core().ok().as_ref(), Some(&core), "recurrence changed through from_core");
        // The dates of one year of the series (bounded, as every caller bounds it).
        if let Some(Ok(start)) = start {
            let until = (start + chrono::Duration::days(366)).date_naive();
            if core.range.start_date <= until
                && until.signed_duration_since(core.range.start_date).num_days() <= 800
            {
                let _ = orb_core::recurrence::pattern_dates(&core, until);
            }
        }
    }
    for a in event.attendees.iter().flatten() {
        if let Some(address) = a.address() {
            let _ = event.attendee_response(address);
        }
    }
}

/// Target `topdesk_models`: bytes as each of orb-topdesk's `wire` types ORB reads from TOPdesk,
/// round-tripped (date-times are written with milliseconds, so equality is checked after one write:
/// the written JSON is stable), plus the error-body reader and the date-time reader on text.
pub fn topdesk_models(data: &[u8]) {
    use orb_topdesk::wire::*;
    json_round_trip::<ReservationDto>(data, false);
    json_round_trip::<ReservationList>(data, false);
    json_round_trip::<Vec<ReservationDto>>(data, false);
    json_round_trip::<ReservableLocationList>(data, false);
    json_round_trip::<SearchListEnvelope>(data, false);
    json_round_trip::<ExtendedLocationDto>(data, false);
    json_round_trip::<RoomReservationManagementDto>(data, false);
    json_round_trip::<ListOfPersonsV2>(data, false);
    json_round_trip::<PersonV2Dto>(data, false);
    json_round_trip::<Vec<PersonV2Dto>>(data, false);
    json_round_trip::<CreateReservationDto>(data, false);
    json_round_trip::<UpdateReservationDto>(data, false);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = orb_topdesk::parse_error_body(text);
        if let Some(at) = orb_topdesk::datetime::parse(text) {
            let written = orb_topdesk::datetime::format(&at);
            let back = orb_topdesk::datetime::parse(&written)
                .unwrap_or_else(|| panic!("ORB cannot read the date-time it wrote: {written}"));
            assert_eq!(back.timestamp_millis(), at.timestamp_millis(), "{written}");
        }
        let _ = orb_topdesk::datetime::parse_http(text);
        let _ = orb_topdesk::datetime::parse_date(text);
    }
}

/// Target `fiql`: text as a FIQL query; when it parses, printing it and parsing the print gives the same
/// query, and the query evaluates against a subject without panicking.
pub fn fiql(data: &[u8]) {
    use orb_topdesk::fiql::{Field, Fiql};
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(query) = Fiql::parse(text) else { return };
    let printed = query.to_string();
    let again = Fiql::parse(&printed)
        .unwrap_or_else(|e| panic!("ORB cannot parse its own FIQL {printed:?} (from {text:?}): {e}"));
    assert_eq!(again, query, "FIQL changed through its print {printed:?}");
    let _ = query.selectors();
    let lookup = |selector: &str| -> Vec<Field> {
        match selector.len() % 5 {
            0 => vec![Field::Null],
            1 => vec![Field::Text(selector.to_owned())],
            2 => vec![Field::Number(selector.len() as f64)],
            3 => vec![Field::Bool(true), Field::Text(String::new())],
            _ => vec![Field::Date(*NOW)],
        }
    };
    let _ = query.eval(&lookup, true);
    let _ = query.eval(&lookup, false);
}

/// Target `config`: text as a tenant settings document, TOML (as an admin writes it) and JSON (as it is
/// stored); what loads writes back to both forms and loads again equal.
pub fn config(data: &[u8]) {
    use orb_engine::settings::TenantSettings;
    let Ok(text) = std::str::from_utf8(data) else { return };
    for loaded in [TenantSettings::from_toml(text), TenantSettings::from_json(text)] {
        let Ok(settings) = loaded else { continue };
        let json = settings.to_json();
        let from_json = TenantSettings::from_json(&json)
            .unwrap_or_else(|e| panic!("stored JSON does not load ({e}): {json}"));
        assert_eq!(from_json, settings, "settings changed through JSON");
        let toml = settings.to_toml();
        let from_toml = TenantSettings::from_toml(&toml)
            .unwrap_or_else(|e| panic!("written TOML does not load ({e}): {toml}"));
        assert_eq!(from_toml, settings, "settings changed through TOML");
    }
}

/// Target `ews_xml`: text as an EWS SOAP answer through every response reader, and as a push
/// notification; a parsed element tree written as a document parses back equal.
pub fn ews_xml(data: &[u8]) {
    use orb_ews::response::{self, HttpAnswer};
    use orb_ews::{push, xml};
    let Ok(body) = std::str::from_utf8(data) else { return };
    if let Ok(tree) = xml::parse(body) {
        let document = tree.to_document();
        let back = xml::parse(&document)
            .unwrap_or_else(|e| panic!("ORB cannot read the XML it wrote ({e}): {document}"));
        assert_eq!(back, tree, "the element tree changed through its document: {document}");
        let _ = tree.descendants();
        let _ = tree.shape();
    }
    let _ = push::parse_notification(body);
    let _ = push::parse_notification_result(body);
    for (status, content_type) in [(200, Some("text/xml; charset=utf-8")), (500, None)] {
        let answer = HttpAnswer { status, content_type, retry_after: None, body };
        let Ok(op) = response::operation_response(&answer, Some("room@example.com")) else { continue };
        let mailbox = Some("room@example.com");
        let _ = response::back_off_of(&op);
        let _ = response::response_messages(&op);
        let _ = response::single_message(&op, mailbox);
        let _ = response::find_item(&op, mailbox);
        let _ = response::get_item(&op, mailbox);
        let _ = response::written_item(&op, mailbox);
        let _ = response::no_payload(&op, mailbox);
        let _ = response::sync_folder_items(&op, mailbox);
        let _ = response::room_lists(&op);
        let _ = response::rooms(&op);
        let _ = response::subscribe(&op, mailbox);
        for el in op.descendants() {
            let _ = response::calendar_item(el);
            let _ = response::check_class(el, mailbox);
        }
    }
}
