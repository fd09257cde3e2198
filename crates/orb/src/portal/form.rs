//! The portal's settings form: one table ([`FIELDS`]) of dotted keys into the tenant settings document,
//! with labels, help and input kinds, the write-only secrets the page offers ([`SECRETS`]), and reading and
//! writing a dotted key of the JSON document as form text ([`get_path`], [`set_path`]).

use orb_core::{EmailAddress, MailTemplate};
use orb_engine::settings::{
    SECRET_EWS_PASSWORD, SECRET_EWS_TOKEN, SECRET_GRAPH_CERTIFICATE, SECRET_GRAPH_CLIENT_SECRET,
    SECRET_TOPDESK_PASSWORD,
};
use orb_web::portal::backend::{BackendError, FieldKind, SECRET_SSO_CLIENT, SecretField};
use serde_json::{Value, json};

/// One settings field: key, label, help, kind, section.
pub(crate) struct Field {
    pub(crate) key: &'static str,
    pub(crate) label: &'static str,
    pub(crate) help: &'static str,
    pub(crate) kind: fn() -> FieldKind,
    pub(crate) section: &'static str,
    pub(crate) optional: bool,
}

fn text() -> FieldKind {
    FieldKind::Text
}
fn number() -> FieldKind {
    FieldKind::Number
}
fn lines() -> FieldKind {
    FieldKind::Lines
}
fn toggle() -> FieldKind {
    FieldKind::Toggle
}
fn choice(options: &[&str]) -> FieldKind {
    FieldKind::Choice(options.iter().map(|s| (*s).to_owned()).collect())
}
fn exchange_kinds() -> FieldKind {
    choice(&["graph", "ews"])
}
fn ews_auths() -> FieldKind {
    choice(&["ntlm", "basic", "bearer"])
}
fn ews_notifications() -> FieldKind {
    choice(&["push", "streaming"])
}
fn clouds() -> FieldKind {
    choice(&["global", "usgov-l4", "usgov-dod", "china", "custom"])
}
fn modes() -> FieldKind {
    choice(&["organizer", "room-only"])
}
fn subjects() -> FieldKind {
    choice(&["keep", "hide", "drop"])
}
fn conflicts() -> FieldKind {
    choice(&["exchange-wins", "topdesk-wins", "latest-wins"])
}
fn cancellations() -> FieldKind {
    choice(&["cancel-meeting", "remove-room"])
}
fn refusals() -> FieldKind {
    choice(&["mail", "release-room"])
}
fn mails() -> FieldKind {
    FieldKind::Multi(MailTemplate::ALL.iter().map(|m| m.as_str().to_owned()).collect())
}

macro_rules! field {
    ($section:literal, $key:literal, $label:literal, $kind:ident, $optional:literal, $help:literal) => {
        Field { key: $key, label: $label, help: $help, kind: $kind, section: $section, optional: $optional }
    };
}

/// The settings form, in order (see the module docs). Only the section `exchange.kind` names (`[graph]` or
/// `[ews]`) is saved; the other one's fields are dropped ([`keep_chosen_exchange`]).
pub(crate) const FIELDS: &[Field] = &[
    field!(
        "Exchange",
        "exchange.kind",
        "Exchange is reached through",
        exchange_kinds,
        false,
        "graph: Exchange Online (Microsoft Graph, the section below); ews: Exchange Server on-premises \
         (EWS, the section after it). Only the chosen section is saved."
    ),
    field!(
        "Exchange Online (Microsoft Graph)",
        "graph.cloud",
        "Cloud",
        clouds,
        false,
        "Microsoft's cloud the organisation lives in (custom: only where the installation defines one)."
    ),
    field!(
        "Exchange Online (Microsoft Graph)",
        "graph.tenant_id",
        "Tenant (directory) id",
        text,
        false,
        "The GUID shown as Tenant ID in the Microsoft Entra admin center, Overview."
    ),
    field!(
        "Exchange Online (Microsoft Graph)",
        "graph.client_id",
        "Application (client) id",
        text,
        false,
        "The app registration's client id; it needs Calendars.ReadWrite, Mail.Send and Place.Read.All."
    ),
    field!(
        "Exchange Online (Microsoft Graph)",
        "graph.mail_sender",
        "Mail sender",
        text,
        false,
        "The mailbox ORB's mails to users are sent from."
    ),
    field!(
        "Exchange Server on-premises (EWS)",
        "ews.url",
        "EWS URL",
        text,
        false,
        "The EWS endpoint, e.g. https://mail.contoso.com/EWS/Exchange.asmx."
    ),
    field!(
        "Exchange Server on-premises (EWS)",
        "ews.username",
        "Service account",
        text,
        false,
        "DOMAIN\\user or the UPN of the account with ApplicationImpersonation, scoped to the rooms, the \
         organizers and the mail sender."
    ),
    field!(
        "Exchange Server on-premises (EWS)",
        "ews.auth",
        "Sign-in",
        ews_auths,
        false,
        "ntlm (recommended on-premises: Windows authentication, Exchange's default) or basic: the service \
         account's password (over https); bearer: an OAuth token (hybrid modern authentication). Set the \
         matching secret below. Settings without a choice sign in with basic."
    ),
    field!(
        "Exchange Server on-premises (EWS)",
        "ews.mail_sender",
        "Mail sender",
        text,
        false,
        "The mailbox ORB's mails to users are sent from (inside the impersonation scope)."
    ),
    field!(
        "Exchange Server on-premises (EWS)",
        "ews.notifications",
        "Change notifications",
        ews_notifications,
        false,
        "push: Exchange calls ORB at its public URL (server.public_url, reachable from the Exchange \
         servers); streaming: ORB keeps a connection open to Exchange (outbound only, for a server that \
         cannot reach ORB)."
    ),
    field!(
        "TOPdesk",
        "topdesk.url",
        "URL",
        text,
        false,
        "The TOPdesk instance, e.g. https://contoso.topdesk.net."
    ),
    field!(
        "TOPdesk",
        "topdesk.username",
        "API operator login",
        text,
        false,
        "The login of the operator whose application password ORB uses."
    ),
    field!(
        "TOPdesk",
        "topdesk.link_type",
        "External-link type",
        number,
        false,
        "The external-link type reserved for ORB (a positive number)."
    ),
    field!(
        "TOPdesk",
        "topdesk.cancel_reason",
        "Cancellation reason",
        text,
        true,
        "The reason ORB gives when it cancels; empty: TOPdesk's default."
    ),
    field!(
        "Sync policy",
        "sync.mode",
        "Mode",
        modes,
        false,
        "organizer: writes go into the organizer's calendar; room-only: only the room's."
    ),
    field!(
        "Sync policy",
        "sync.subject",
        "Subjects",
        subjects,
        false,
        "keep: synced as they are; hide: the room side shows the text below; drop: never stored or sent."
    ),
    field!(
        "Sync policy",
        "sync.hidden_subject",
        "Hidden subject text",
        text,
        false,
        "What the room side shows when subjects are hidden."
    ),
    field!(
        "Sync policy",
        "sync.conflict",
        "Conflicts",
        conflicts,
        false,
        "Which side wins when both changed the same booking."
    ),
    field!(
        "Sync policy",
        "sync.cancellation",
        "Cancellation",
        cancellations,
        false,
        "What a cancelled reservation does to the meeting: cancel it, or only remove the room."
    ),
    field!(
        "Sync policy",
        "sync.topdesk_refusal",
        "TOPdesk refusals",
        refusals,
        false,
        "mail: the organizer is told; release-room: TOPdesk decides and the room is released in Outlook."
    ),
    field!(
        "Sync policy",
        "sync.fallback_person.person_id",
        "Fallback person (TOPdesk id)",
        text,
        true,
        "The TOPdesk person (id, as in TOPdesk's person card URL) ORB books as requester for organizers \
         TOPdesk does not know; give the e-mail below too. Empty: such bookings fail and the organizer \
         is told."
    ),
    field!(
        "Sync policy",
        "sync.fallback_person.email",
        "Fallback person (e-mail)",
        text,
        true,
        "The fallback person's e-mail address as TOPdesk shows it as requester."
    ),
    field!(
        "Sync policy",
        "sync.time_zone",
        "Time zone",
        text,
        false,
        "The rooms' time zone (IANA), e.g. Europe/Amsterdam."
    ),
    field!(
        "Sync policy",
        "sync.horizon_days",
        "Horizon (days)",
        number,
        false,
        "How many days ahead bookings are synced (1–730)."
    ),
    field!(
        "Sync policy",
        "sync.mass_deletion_percent",
        "Mass-deletion guard (%)",
        number,
        false,
        "The largest share of a room's future bookings one sweep may cancel without approval (1–100)."
    ),
    field!(
        "Sync policy",
        "sync.mass_deletion_min_bookings",
        "Guard from (bookings)",
        number,
        false,
        "Rooms with at most this many future bookings are not guarded."
    ),
    field!(
        "Mails",
        "sync.mails",
        "Mails to users",
        mails,
        false,
        "Which events ORB mails the people concerned about."
    ),
    field!(
        "Portal",
        "portal.mfa_required",
        "Second factor required",
        toggle,
        false,
        "Every user must use an authenticator app (TOTP); users without one enrol at their next login."
    ),
    field!(
        "Portal",
        "portal.allow_cidrs",
        "Portal allow-list",
        lines,
        false,
        "Addresses (CIDR, one per line) your users may use the portal from; empty: anywhere."
    ),
    field!(
        "Portal",
        "portal.webhook_allow_cidrs",
        "Webhook allow-list",
        lines,
        false,
        "Addresses (CIDR, one per line) webhooks are accepted from; empty: anywhere."
    ),
    field!(
        "Portal",
        "portal.sso_issuer",
        "Single sign-on issuer",
        text,
        true,
        "Your OpenID provider's issuer URL; empty: no single sign-on."
    ),
    field!(
        "Portal",
        "portal.sso_client_id",
        "Single sign-on client id",
        text,
        true,
        "ORB's client id at the provider (its secret is set below)."
    ),
    field!("Retention", "retention.jobs_hours", "Finished jobs (hours)", number, false, "1–720."),
    field!(
        "Retention",
        "retention.bookings_days",
        "Bookings after they end (days)",
        number,
        false,
        "1–3650."
    ),
    field!("Retention", "retention.audit_days", "Audit rows (days)", number, false, "30–3650."),
];

/// The secrets the settings page offers.
pub(crate) const SECRETS: &[SecretField] = &[
    SecretField {
        name: SECRET_GRAPH_CLIENT_SECRET,
        label: "Graph client secret",
        help: "The app registration's client secret value.",
        multiline: false,
    },
    SecretField {
        name: SECRET_GRAPH_CERTIFICATE,
        label: "Graph certificate",
        help: "Instead of the secret: a PEM bundle of the PKCS#8 private key and the certificate uploaded to the app.",
        multiline: true,
    },
    SecretField {
        name: SECRET_EWS_PASSWORD,
        label: "EWS service account password",
        help: "Exchange Server (EWS) with sign-in ntlm or basic: the service account's password.",
        multiline: false,
    },
    SecretField {
        name: SECRET_EWS_TOKEN,
        label: "EWS bearer token",
        help: "Exchange Server (EWS) with sign-in bearer: the OAuth access token.",
        multiline: false,
    },
    SecretField {
        name: SECRET_TOPDESK_PASSWORD,
        label: "TOPdesk application password",
        help: "The API operator's application password.",
        multiline: false,
    },
    SecretField {
        name: SECRET_SSO_CLIENT,
        label: "Single sign-on client secret",
        help: "ORB's client secret at your OpenID provider.",
        multiline: false,
    },
];

/// The value at a dotted key of a JSON document, as form text.
pub(crate) fn get_path(doc: &Value, key: &str) -> String {
    let mut at = doc;
    for part in key.split('.') {
        match at.get(part) {
            Some(v) => at = v,
            None => return String::new(),
        }
    }
    match at {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Keeps only the Exchange section `exchange.kind` names (`graph` when unset): a form posts the fields of
/// both, and the settings document holds exactly one (`[graph]` or `[ews]`).
pub(crate) fn keep_chosen_exchange(doc: &mut Value) {
    let kind = doc.pointer("/exchange/kind").and_then(Value::as_str).unwrap_or("graph").to_owned();
    if let Value::Object(map) = doc {
        map.remove(if kind == "ews" { "graph" } else { "ews" });
    }
}

/// Checks the fallback person the form left in the document: both its TOPdesk id and its e-mail address,
/// a valid address, or neither (then the key goes).
pub(crate) fn check_fallback_person(doc: &mut Value) -> Result<(), BackendError> {
    let Some(sync) = doc.get_mut("sync").and_then(Value::as_object_mut) else { return Ok(()) };
    let Some(person) = sync.get("fallback_person") else { return Ok(()) };
    let text = |key: &str| person.get(key).and_then(Value::as_str).map(str::trim).filter(|t| !t.is_empty());
    match (text("person_id"), text("email")) {
        (None, None) => {
            sync.remove("fallback_person");
            Ok(())
        }
        (Some(_), Some(email)) => match EmailAddress::parse(email) {
            Ok(_) => Ok(()),
            Err(e) => Err(BackendError::Invalid(format!("Fallback person (e-mail): {e}"))),
        },
        _ => Err(BackendError::Invalid(
            "Fallback person: give both its TOPdesk id and its e-mail address, or neither".into(),
        )),
    }
}

/// The document as the form shows it: the defaults of a section that is not there yet (the Graph cloud,
/// the EWS sign-in), so its selects start at a value the document would get.
pub(crate) fn with_form_defaults(mut doc: Value) -> Value {
    if doc.pointer("/exchange/kind").is_none() {
        doc["exchange"] = json!({ "kind": "graph" });
    }
    if doc.pointer("/graph/cloud").is_none() {
        doc["graph"]["cloud"] = json!("global");
    }
    if doc.pointer("/ews/auth").is_none() {
        doc["ews"]["auth"] = json!("basic");
    }
    if doc.pointer("/ews/notifications").is_none() {
        doc["ews"]["notifications"] = json!("push");
    }
    doc
}

/// Sets a dotted key of a JSON document from form text, typed by the field's kind.
pub(crate) fn set_path(doc: &mut Value, field: &Field, text: &str) -> Result<(), BackendError> {
    let text = text.trim();
    let value = match (field.kind)() {
        _ if text.is_empty() && field.optional => Value::Null,
        FieldKind::Number => Value::from(text.parse::<i64>().map_err(|_| {
            BackendError::Invalid(format!("{}: {text:?} is not a whole number", field.label))
        })?),
        FieldKind::Toggle => Value::Bool(match text {
            "true" | "on" | "1" => true,
            "false" | "off" | "0" => false,
            _ => return Err(BackendError::Invalid(format!("{}: use on or off", field.label))),
        }),
        FieldKind::Lines | FieldKind::Multi(_) => Value::Array(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| Value::String(l.to_owned()))
                .collect(),
        ),
        FieldKind::Choice(options) => {
            if !options.iter().any(|o| o == text) {
                return Err(BackendError::Invalid(format!(
                    "{}: use one of {}",
                    field.label,
                    options.join(", ")
                )));
            }
            Value::String(text.to_owned())
        }
        FieldKind::Text => Value::String(text.to_owned()),
    };
    let parts: Vec<&str> = field.key.split('.').collect();
    let mut at = doc;
    for part in &parts[..parts.len() - 1] {
        if !at.get(*part).is_some_and(Value::is_object) {
            at[*part] = json!({});
        }
        at = &mut at[*part];
    }
    let last = parts[parts.len() - 1];
    if let Value::Object(map) = at {
        if value.is_null() {
            map.remove(last);
        } else {
            map.insert(last.to_owned(), value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use orb_engine::settings::TenantSettings;

    use super::*;

    #[test]
    fn dotted_keys_read_and_write_typed_values() {
        let mut doc = json!({"sync": {"horizon_days": 180, "mails": ["a", "b"]}, "portal": {}});
        assert_eq!(get_path(&doc, "sync.horizon_days"), "180");
        assert_eq!(get_path(&doc, "sync.mails"), "a\nb");
        assert_eq!(get_path(&doc, "topdesk.url"), "");
        let field = |key: &str| FIELDS.iter().find(|f| f.key == key).unwrap();
        set_path(&mut doc, field("sync.horizon_days"), "30").unwrap();
        set_path(&mut doc, field("portal.allow_cidrs"), "10.0.0.0/8\n\n192.0.2.1\n").unwrap();
        set_path(&mut doc, field("portal.mfa_required"), "false").unwrap();
        set_path(&mut doc, field("topdesk.cancel_reason"), "").unwrap();
        set_path(&mut doc, field("topdesk.url"), "https://x.example").unwrap();
        assert_eq!(doc["sync"]["horizon_days"], 30);
        assert_eq!(doc["portal"]["allow_cidrs"], json!(["10.0.0.0/8", "192.0.2.1"]));
        assert_eq!(doc["portal"]["mfa_required"], false);
        assert_eq!(doc["topdesk"]["url"], "https://x.example");
        assert!(doc["topdesk"].get("cancel_reason").is_none());
        let err = set_path(&mut doc, field("sync.horizon_days"), "soon").unwrap_err().to_string();
        assert!(err.contains("not a whole number"), "{err}");
        let err = set_path(&mut doc, field("sync.mode"), "both").unwrap_err().to_string();
        assert!(err.contains("organizer, room-only"), "{err}");
    }

    const GRAPH: &str = "[graph]\ntenant_id = \"7d2a5c1e-0b9f-4c1a-9f77-3e1f2a4b5c6d\"\nclient_id = \"c\"\n\
                         mail_sender = \"orb@contoso.com\"\n[topdesk]\nurl = \"https://contoso.topdesk.net\"\n\
                         username = \"orb\"\nlink_type = 7\n";
    const EWS: &str = "[exchange]\nkind = \"ews\"\n[ews]\nurl = \"https://mail.contoso.com/EWS/Exchange.asmx\"\n\
                       username = 'CONTOSO\\svc-orb'\nmail_sender = \"orb@contoso.com\"\n[topdesk]\n\
                       url = \"https://contoso.topdesk.net\"\nusername = \"orb\"\nlink_type = 7\n";

    /// The document of `toml` as the form shows it, every field posted back unchanged.
    fn round_trip(toml: &str) -> TenantSettings {
        let settings = TenantSettings::from_toml(toml).unwrap();
        let shown = with_form_defaults(serde_json::from_str(&settings.to_json()).unwrap());
        let mut doc: Value = serde_json::from_str(&settings.to_json()).unwrap();
        for f in FIELDS {
            set_path(&mut doc, f, &get_path(&shown, f.key)).unwrap();
        }
        keep_chosen_exchange(&mut doc);
        check_fallback_person(&mut doc).unwrap();
        let saved = TenantSettings::from_json(&doc.to_string()).unwrap();
        assert_eq!(saved, settings, "the form changes nothing it was not asked to");
        saved
    }

    #[test]
    fn every_field_key_exists_in_the_settings_document() {
        // A key the document does not know would fail every save with "unknown field" (both kinds).
        assert!(round_trip(GRAPH).ews.is_none());
        assert!(round_trip(EWS).graph.is_none());
        let with_person = format!(
            "{GRAPH}[sync]\nfallback_person = {{ person_id = \"p-1\", email = \"desk@contoso.com\" }}\n"
        );
        let person = round_trip(&with_person).sync.fallback_person.unwrap();
        assert_eq!((person.person_id.as_str(), person.email.as_str()), ("p-1", "desk@contoso.com"));
    }

    #[test]
    fn a_fallback_person_needs_its_id_and_a_valid_address_or_nothing() {
        let field = |key: &str| FIELDS.iter().find(|f| f.key == key).unwrap();
        /// The id and e-mail posted, and the fallback person saved or the error expected.
        type Case<'a> = (&'a str, &'a str, Result<Option<(&'a str, &'a str)>, &'a str>);
        let cases: &[Case] = &[
            ("", "", Ok(None)),
            ("  ", " ", Ok(None)),
            ("p-1", "desk@contoso.com", Ok(Some(("p-1", "desk@contoso.com")))),
            ("p-1", "", Err("give both its TOPdesk id and its e-mail address, or neither")),
            ("", "desk@contoso.com", Err("give both its TOPdesk id and its e-mail address, or neither")),
            ("p-1", "desk", Err("Fallback person (e-mail)")),
        ];
        for (id, email, expected) in cases {
            let mut doc: Value =
                serde_json::from_str(&TenantSettings::from_toml(GRAPH).unwrap().to_json()).unwrap();
            set_path(&mut doc, field("sync.fallback_person.person_id"), id).unwrap();
            set_path(&mut doc, field("sync.fallback_person.email"), email).unwrap();
            match (check_fallback_person(&mut doc), expected) {
                (Ok(()), Ok(expected)) => {
                    let saved = TenantSettings::from_json(&doc.to_string()).unwrap().sync.fallback_person;
                    let saved = saved.as_ref().map(|p| (p.person_id.as_str(), p.email.as_str()));
                    assert_eq!(saved, *expected, "{id:?} {email:?}");
                }
                (Err(e), Err(expected)) => assert!(e.to_string().contains(expected), "{id:?} {email:?}: {e}"),
                (got, expected) => panic!("{id:?} {email:?}: {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn the_chosen_exchange_kind_keeps_its_section_and_drops_the_other() {
        let field = |key: &str| FIELDS.iter().find(|f| f.key == key).unwrap();
        let graph = TenantSettings::from_toml(GRAPH).unwrap();
        let mut doc: Value = serde_json::from_str(&graph.to_json()).unwrap();
        for (key, value) in [
            ("exchange.kind", "ews"),
            ("ews.url", "https://mail.contoso.com/EWS/Exchange.asmx"),
            ("ews.username", "CONTOSO\\svc-orb"),
            ("ews.auth", "basic"),
            ("ews.mail_sender", "orb@contoso.com"),
        ] {
            set_path(&mut doc, field(key), value).unwrap();
        }
        keep_chosen_exchange(&mut doc);
        assert!(doc.get("graph").is_none(), "{doc}");
        let ews = TenantSettings::from_json(&doc.to_string()).unwrap();
        assert_eq!(ews.exchange.kind, orb_engine::exchange::ExchangeKind::Ews);
        assert_eq!(ews.ews.as_ref().unwrap().username, "CONTOSO\\svc-orb");
        // And back: the [ews] section goes, [graph] must be given again.
        set_path(&mut doc, field("exchange.kind"), "graph").unwrap();
        keep_chosen_exchange(&mut doc);
        assert!(doc.get("ews").is_none(), "{doc}");
        let err = TenantSettings::from_json(&doc.to_string()).unwrap_err().to_string();
        assert!(err.contains("give the [graph] section"), "{err}");
        let err = set_path(&mut doc, field("ews.auth"), "kerberos").unwrap_err().to_string();
        assert!(err.contains("ntlm, basic, bearer"), "{err}");
        set_path(&mut doc, field("ews.auth"), "ntlm").unwrap();
        assert_eq!(get_path(&doc, "ews.auth"), "ntlm");
        // The form starts a new document's selects at the values it would get.
        let shown = with_form_defaults(json!({}));
        assert_eq!(
            (
                get_path(&shown, "exchange.kind"),
                get_path(&shown, "graph.cloud"),
                get_path(&shown, "ews.auth")
            ),
            ("graph".to_owned(), "global".to_owned(), "basic".to_owned())
        );
        assert_eq!(get_path(&shown, "ews.notifications"), "push");
        let mut doc = json!({});
        set_path(&mut doc, field("ews.notifications"), "streaming").unwrap();
        let err = set_path(&mut doc, field("ews.notifications"), "pull").unwrap_err().to_string();
        assert!(err.contains("push, streaming"), "{err}");
    }
}
