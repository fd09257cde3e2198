//! The portal's view of the engine: [`EngineBackend`] implements `orb_web::portal::PortalBackend` over the
//! store, the master key, the tenants' settings and the live engine (`SyncDeps`), so orb-web needs none of
//! them. The settings form is one table ([`form::FIELDS`]) of dotted keys into the tenant settings document; a
//! save changes only the keys it names, keeps only the Exchange section `exchange.kind` chooses (`[graph]`
//! or `[ews]`), and the whole document is validated (and the TOPdesk URL checked against the
//! installation's address policy) before anything is stored.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orb_core::{CorrelationId, RoomId, Side, TenantId};
use orb_crypto::{KeyRing, SealedSecret, SecretAad};
use orb_engine::reconcile::{AUDIT_MASS_DELETION_HELD, SweepOptions, sweep_room_with};
use orb_engine::runtime::{SyncDeps, TenantRuntime};
use orb_engine::settings::{SECRET_GRAPH_CERTIFICATE, TenantSettings, check_topdesk_url};
use orb_store::{AuditFilter, NewAuditEntry, SealedTotp, Store, UserId};
use orb_web::portal::backend::{
    BackendError, ConnectionCheck, FieldKind, HeldDeletion, PortalBackend, RoomSuggestion, SECRET_SSO_CLIENT,
    SecretField, SettingsField, SettingsSection, SsoSettings, TenantPolicy, TenantStatus,
};
use orb_web::portal::view::is_field;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::serve::Env;

mod form;

use form::{
    FIELDS, SECRETS, check_fallback_person, get_path, keep_chosen_exchange, set_path, with_form_defaults,
};

/// How long a tenant's portal policy is reused before its settings are read again (the webhook intake
/// asks for it on every request).
const POLICY_TTL: StdDuration = StdDuration::from_secs(5);

/// The AAD kind of sealed TOTP secrets.
const TOTP_KIND: &str = "users.totp";

/// How "test connection" and the suggestions wait at most.
const PROBE_TIMEOUT: StdDuration = StdDuration::from_secs(15);

/// The engine as the portal sees it (see the module docs).
pub(crate) struct EngineBackend {
    env: Arc<Env>,
    deps: Option<watch::Receiver<Arc<SyncDeps>>>,
    policies: Mutex<HashMap<TenantId, (Instant, TenantPolicy)>>,
}

impl std::fmt::Debug for EngineBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBackend").finish_non_exhaustive()
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::Failed { message: format!("{what}: {e}") }
}

impl EngineBackend {
    /// A backend over `env`; `deps` is the live engine where one runs (approving held deletions needs it).
    pub(crate) fn new(env: Arc<Env>, deps: Option<watch::Receiver<Arc<SyncDeps>>>) -> Self {
        Self { env, deps, policies: Mutex::new(HashMap::new()) }
    }

    fn store(&self) -> &dyn Store {
        &*self.env.store
    }

    fn now(&self) -> DateTime<Utc> {
        self.env.clock.now()
    }

    async fn settings(&self, tenant: TenantId) -> Result<Option<(TenantSettings, i64)>, BackendError> {
        let Some(row) =
            self.store().get_tenant_settings(tenant).await.map_err(|e| failed("reading settings", e))?
        else {
            return Ok(None);
        };
        let settings = TenantSettings::from_json(&row.document)
            .map_err(|e| failed("the stored settings cannot be read", e))?;
        Ok(Some((settings, row.version)))
    }

    fn forget_policy(&self, tenant: TenantId) {
        if let Ok(mut cache) = self.policies.lock() {
            cache.remove(&tenant);
        }
    }

    /// Stores a changed document after validating it, with `audit`.
    async fn store_document(
        &self,
        tenant: TenantId,
        doc: &Value,
        version: Option<i64>,
        audit: &NewAuditEntry,
    ) -> Result<(), BackendError> {
        let settings =
            TenantSettings::from_json(&doc.to_string()).map_err(|e| BackendError::Invalid(e.to_string()))?;
        for hidden in &settings.portal.hidden_fields {
            if !is_field(hidden) {
                return Err(BackendError::Invalid(format!("{hidden:?} is not a booking field")));
            }
        }
        check_topdesk_url(&settings, &self.env.urls.topdesk, PROBE_TIMEOUT)
            .await
            .map_err(|e| BackendError::Invalid(e.to_string()))?;
        self.store()
            .put_tenant_settings(tenant, &settings.to_json(), version, self.now(), audit)
            .await
            .map_err(|e| match e {
                orb_store::StoreError::Conflict { .. } => BackendError::Invalid(
                    "someone else saved the settings meanwhile; reload and try again".into(),
                ),
                e => failed("storing settings", e),
            })?;
        self.forget_policy(tenant);
        Ok(())
    }

    async fn runtime(&self, tenant: TenantId) -> Result<TenantRuntime, String> {
        let tenants = self.store().list_tenants().await.map_err(|e| e.to_string())?;
        let tenant = tenants.into_iter().find(|t| t.id == tenant).ok_or("no such tenant")?;
        match crate::serve::tenant_runtime(&self.env, &tenant).await {
            Ok(Some(runtime)) => Ok(runtime),
            Ok(None) => Err("the tenant's settings or secrets are incomplete".into()),
            Err(e) => Err(format!("{e:#}")),
        }
    }
}

/// Seals a user's TOTP secret under the ring's current key, bound to the user (no tenant: operators have
/// none): stored as nonce ‖ ciphertext+tag with the key id.
pub(crate) fn seal_totp(
    ring: &KeyRing,
    user: UserId,
    secret: &[u8],
) -> Result<SealedTotp, orb_crypto::CryptoError> {
    let row = user.to_string();
    let sealed =
        ring.seal(&SecretAad::new(TenantId::from_uuid(uuid::Uuid::nil()), TOTP_KIND, &row), secret)?;
    let mut bytes = sealed.nonce.to_vec();
    bytes.extend_from_slice(&sealed.ciphertext);
    Ok(SealedTotp { sealed: bytes, key_id: sealed.key_id })
}

/// Opens what [`seal_totp`] sealed (under any key of the ring).
pub(crate) fn open_totp(
    ring: &KeyRing,
    user: UserId,
    sealed: &SealedTotp,
) -> Result<Vec<u8>, orb_crypto::CryptoError> {
    const NONCE: usize = 12;
    let row = user.to_string();
    if sealed.sealed.len() < NONCE {
        return Err(orb_crypto::CryptoError::Malformed {
            reason: "the sealed second factor is too short".into(),
        });
    }
    let (nonce, ciphertext) = sealed.sealed.split_at(NONCE);
    let envelope = SealedSecret::from_parts(sealed.key_id.clone(), nonce, ciphertext.to_vec())?;
    ring.open_bytes(&SecretAad::new(TenantId::from_uuid(uuid::Uuid::nil()), TOTP_KIND, &row), &envelope)
        .map(|secret| secret.expose_secret().to_vec())
}

/// Re-seals every user's TOTP secret that is not under the ring's current key (master-key rotation).
/// Idempotent: an interrupted run is finished by running it again. Returns how many were re-sealed.
pub(crate) async fn reseal_totp(store: &dyn Store, ring: &KeyRing) -> anyhow::Result<usize> {
    let mut count = 0;
    for user in store.list_users(None).await? {
        let Some(sealed) = &user.totp else { continue };
        if sealed.key_id == ring.current().id() {
            continue;
        }
        let plain = open_totp(ring, user.id, sealed).map_err(|e| {
            anyhow::anyhow!("cannot open the second factor of {} with the keys given: {e}", user.email)
        })?;
        let resealed = seal_totp(ring, user.id, &plain)?;
        store.set_user_totp(user.id, Some(&resealed), user.totp_enabled, None).await?;
        count += 1;
    }
    Ok(count)
}

/// Lower-case letters and digits only, for pairing names.
fn normalise(text: &str) -> String {
    text.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

#[async_trait]
impl PortalBackend for EngineBackend {
    async fn policy(&self, tenant: TenantId) -> Result<TenantPolicy, BackendError> {
        if let Ok(cache) = self.policies.lock()
            && let Some((at, policy)) = cache.get(&tenant)
            && at.elapsed() < POLICY_TTL
        {
            return Ok(policy.clone());
        }
        let policy = match self.settings(tenant).await? {
            None => TenantPolicy::default(),
            Some((s, _)) => TenantPolicy {
                mfa_required: s.portal.mfa_required,
                hidden_fields: s.portal.hidden_fields.clone(),
                portal_allow: orb_auth::IpAllowList::parse(&s.portal.allow_cidrs)
                    .map_err(|e| failed("portal allow-list", e))?,
                webhook_allow: orb_auth::IpAllowList::parse(&s.portal.webhook_allow_cidrs)
                    .map_err(|e| failed("webhook allow-list", e))?,
                sso: match (&s.portal.sso_issuer, &s.portal.sso_client_id) {
                    (Some(issuer), Some(client_id)) => {
                        Some(SsoSettings { issuer: issuer.clone(), client_id: client_id.clone() })
                    }
                    _ => None,
                },
                zone: s.sync.time_zone.as_str().parse().unwrap_or(chrono_tz::UTC),
            },
        };
        if let Ok(mut cache) = self.policies.lock() {
            cache.insert(tenant, (Instant::now(), policy.clone()));
        }
        Ok(policy)
    }

    async fn status(&self, tenant: TenantId) -> Result<TenantStatus, BackendError> {
        let configured =
            self.store().get_tenant_settings(tenant).await.map_err(|e| failed("settings", e))?.is_some();
        let last_topdesk_poll = self
            .store()
            .get_cursor(tenant, orb_engine::poller::CURSOR_NEAR)
            .await
            .map_err(|e| failed("cursor", e))?
            .and_then(|text| DateTime::parse_from_rfc3339(&text).ok())
            .map(|t| t.with_timezone(&Utc));
        let paused = match &self.deps {
            Some(deps) => {
                let deps = deps.borrow().clone();
                match deps.tenant(tenant) {
                    Ok(runtime) => [Side::Exchange, Side::Topdesk]
                        .into_iter()
                        .filter_map(|side| {
                            runtime.writes.paused_until(side, self.now()).map(|until| {
                                format!(
                                    "writes to {side} wait until {} (it refused ORB's credentials; fix them \
                                     in the settings)",
                                    until.format("%Y-%m-%d %H:%M UTC")
                                )
                            })
                        })
                        .collect(),
                    Err(_) => Vec::new(),
                }
            }
            None => Vec::new(),
        };
        Ok(TenantStatus { last_topdesk_poll, paused, configured })
    }

    async fn settings_form(&self, tenant: TenantId) -> Result<Vec<SettingsSection>, BackendError> {
        let doc = match self.settings(tenant).await? {
            Some((s, _)) => serde_json::from_str::<Value>(&s.to_json()).map_err(|e| failed("settings", e))?,
            None => {
                json!({ "sync": serde_json::to_value(orb_engine::settings::SyncSettings::default()).unwrap_or_default(),
                            "retention": serde_json::to_value(orb_engine::settings::RetentionSettings::default()).unwrap_or_default(),
                            "portal": serde_json::to_value(orb_engine::settings::PortalSettings::default()).unwrap_or_default() })
            }
        };
        let doc = with_form_defaults(doc);
        let mut sections: Vec<SettingsSection> = Vec::new();
        for f in FIELDS {
            let field = SettingsField {
                key: f.key.to_owned(),
                label: f.label.to_owned(),
                help: f.help.to_owned(),
                kind: (f.kind)(),
                value: get_path(&doc, f.key),
            };
            match sections.last_mut() {
                Some(s) if s.title == f.section => s.fields.push(field),
                _ => sections.push(SettingsSection { title: f.section.to_owned(), fields: vec![field] }),
            }
        }
        Ok(sections)
    }

    async fn save_settings(
        &self,
        tenant: TenantId,
        values: &BTreeMap<String, String>,
        audit: &NewAuditEntry,
    ) -> Result<(), BackendError> {
        let current = self.settings(tenant).await?;
        let version = current.as_ref().map(|(_, v)| *v);
        let mut doc = match &current {
            Some((s, _)) => serde_json::from_str::<Value>(&s.to_json()).map_err(|e| failed("settings", e))?,
            None => json!({}),
        };
        for (key, text) in values {
            let field = FIELDS
                .iter()
                .find(|f| f.key == key)
                .ok_or_else(|| BackendError::Invalid(format!("{key:?} is not a setting")))?;
            set_path(&mut doc, field, text)?;
        }
        // A multi-choice field with nothing ticked sends nothing: present in the form means "none".
        for f in FIELDS.iter().filter(|f| matches!((f.kind)(), FieldKind::Multi(_))) {
            if !values.contains_key(f.key) && values.contains_key("sync.mode") {
                set_path(&mut doc, f, "")?;
            }
        }
        // The form holds both Exchange sections; the document only the chosen one.
        keep_chosen_exchange(&mut doc);
        check_fallback_person(&mut doc)?;
        self.store_document(tenant, &doc, version, audit).await
    }

    async fn save_hidden_fields(
        &self,
        tenant: TenantId,
        fields: &BTreeSet<String>,
        audit: &NewAuditEntry,
    ) -> Result<(), BackendError> {
        let Some((settings, version)) = self.settings(tenant).await? else {
            return Err(BackendError::Invalid("save the tenant's settings first".into()));
        };
        let mut doc =
            serde_json::from_str::<Value>(&settings.to_json()).map_err(|e| failed("settings", e))?;
        doc["portal"]["hidden_fields"] =
            Value::Array(fields.iter().map(|f| Value::String(f.clone())).collect());
        self.store_document(tenant, &doc, Some(version), audit).await
    }

    fn secret_fields(&self) -> Vec<SecretField> {
        SECRETS.to_vec()
    }

    async fn set_secret(
        &self,
        tenant: TenantId,
        name: &str,
        value: SecretString,
        audit: &NewAuditEntry,
    ) -> Result<(), BackendError> {
        if name == SECRET_GRAPH_CERTIFICATE {
            orb_graph::CertificateCredential::from_pem(value.expose_secret().as_bytes()).map_err(|e| {
                BackendError::Invalid(format!(
                    "{e}; the certificate takes a PEM bundle of the PKCS#8 private key and the certificate \
                     uploaded to the app registration; nothing was stored"
                ))
            })?;
        }
        crate::secrets::set_audited(
            self.store(),
            self.env.master.current(),
            tenant,
            name,
            &value,
            self.now(),
            audit,
        )
        .await
        .map_err(|e| failed("storing the secret", format!("{e:#}")))?;
        Ok(())
    }

    async fn test_connection(&self, tenant: TenantId, side: Side) -> ConnectionCheck {
        let runtime = match self.runtime(tenant).await {
            Ok(r) => r,
            Err(detail) => return ConnectionCheck { ok: false, detail },
        };
        let attempt = async {
            match side {
                Side::Exchange => {
                    if let Some(graph) = &runtime.graph {
                        graph.tokens().token(graph.app()).await.map_err(|e| format!("no token: {e}"))?;
                        let rooms = graph
                            .list_rooms(CorrelationId::generate(self.now()))
                            .await
                            .map_err(|e| format!("token fine, but listing rooms failed: {e}"))?;
                        return Ok::<String, String>(format!(
                            "token issued; {} room(s) visible in Places",
                            rooms.len()
                        ));
                    }
                    let rooms = runtime
                        .exchange
                        .list_rooms(CorrelationId::generate(self.now()))
                        .await
                        .map_err(|e| format!("listing rooms failed: {e}"))?;
                    Ok(format!("signed in; {} room(s) in Exchange's room lists", rooms.len()))
                }
                Side::Topdesk => {
                    let me = runtime.topdesk.current_operator().await.map_err(|e| e.to_string())?;
                    let rooms = runtime.topdesk.reservable_locations(&[]).await.map_err(|e| e.to_string())?;
                    let name = me.dynamic_name.unwrap_or_else(|| "the API operator".into());
                    Ok(format!("logged in as {name}; {} reservable room(s)", rooms.len()))
                }
            }
        };
        match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
            Ok(Ok(detail)) => ConnectionCheck { ok: true, detail },
            Ok(Err(detail)) => ConnectionCheck { ok: false, detail },
            Err(_) => ConnectionCheck { ok: false, detail: "no answer within 15 seconds".into() },
        }
    }

    async fn room_suggestions(&self, tenant: TenantId) -> Result<Vec<RoomSuggestion>, BackendError> {
        let runtime = self.runtime(tenant).await.map_err(|e| failed("the tenant cannot be reached", e))?;
        let mapped = self.store().list_rooms(tenant).await.map_err(|e| failed("rooms", e))?;
        let fetch = async {
            let places = runtime
                .exchange
                .list_rooms(CorrelationId::generate(self.now()))
                .await
                .map_err(|e| failed("Exchange's room directory", e))?;
            let locations =
                runtime.topdesk.reservable_locations(&[]).await.map_err(|e| failed("TOPdesk rooms", e))?;
            Ok::<_, BackendError>((places, locations))
        };
        let (places, locations) = tokio::time::timeout(PROBE_TIMEOUT, fetch)
            .await
            .map_err(|_| failed("room suggestions", "no answer within 15 seconds"))??;
        let mut out = Vec::new();
        let mut taken_locations = BTreeSet::new();
        for place in places {
            let mailbox = place.email.clone();
            if mapped.iter().any(|r| r.mailbox.as_str().eq_ignore_ascii_case(&mailbox)) {
                continue;
            }
            let local = mailbox.split('@').next().unwrap_or_default();
            let by_name = normalise(&place.name);
            let found = locations.iter().find_map(|loc| {
                let id = loc.id.clone()?;
                if mapped.iter().any(|r| r.topdesk_location_id == id) || taken_locations.contains(id.as_str())
                {
                    return None;
                }
                let name = loc.name.clone().unwrap_or_default();
                let n = normalise(&name);
                let number = loc.room_number.as_deref().map(normalise).unwrap_or_default();
                let reason = if !n.is_empty() && n == by_name {
                    "same name"
                } else if !n.is_empty() && n == normalise(local) {
                    "name matches the mailbox"
                } else if !number.is_empty() && (number == by_name || number == normalise(local)) {
                    "room number matches"
                } else {
                    return None;
                };
                Some((id, name, reason))
            });
            if let Some((id, name, reason)) = found {
                taken_locations.insert(id.as_str().to_owned());
                out.push(RoomSuggestion {
                    mailbox: mailbox.clone(),
                    exchange_name: place.name.clone(),
                    topdesk_location_id: id.as_str().to_owned(),
                    topdesk_name: name,
                    reason: reason.to_owned(),
                });
            }
        }
        Ok(out)
    }

    async fn held_deletions(&self, tenant: TenantId) -> Result<Vec<HeldDeletion>, BackendError> {
        let filter = AuditFilter {
            action_prefix: Some("reconcile.mass_deletion".into()),
            limit: 200,
            ..AuditFilter::default()
        };
        let rows = self.store().search_audit(Some(tenant), &filter).await.map_err(|e| failed("audit", e))?;
        let decided = |room: &str, after: DateTime<Utc>| {
            rows.iter()
                .any(|r| r.action != AUDIT_MASS_DELETION_HELD && r.target.contains(room) && r.at >= after)
        };
        let rooms = self.store().list_rooms(tenant).await.map_err(|e| failed("rooms", e))?;
        let mut out: Vec<HeldDeletion> = Vec::new();
        let mut last_sweeps: BTreeMap<RoomId, Option<DateTime<Utc>>> = BTreeMap::new();
        // Newest first: the latest hold of each room, unless an approval or rejection came after it, or a
        // later sweep of the room completed without holding anything (its cursor is the time of the last
        // completed sweep; the sweep that holds sets it to the hold's time). So a sweep that raced an
        // admin's decision (it read the room before the approved or restored bookings were written) shows
        // only until the room's next sweep.
        for row in rows.iter().filter(|r| r.action == AUDIT_MASS_DELETION_HELD) {
            let Some(room) = rooms.iter().find(|r| row.target.contains(&format!("({})", r.id))) else {
                continue;
            };
            if out.iter().any(|h| h.room_id == room.id) || decided(&room.id.to_string(), row.at) {
                continue;
            }
            let last_sweep = match last_sweeps.get(&room.id) {
                Some(at) => *at,
                None => {
                    let cursor = orb_engine::reconcile::cursor_name(room.id);
                    let value =
                        self.store().get_cursor(tenant, &cursor).await.map_err(|e| failed("cursor", e))?;
                    let at = value
                        .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
                        .map(|at| at.with_timezone(&Utc));
                    last_sweeps.insert(room.id, at);
                    at
                }
            };
            // (A second of slack: the audit log may keep coarser times than the cursor.)
            if last_sweep.is_some_and(|at| at >= row.at + chrono::Duration::seconds(1)) {
                continue;
            }
            let count = row
                .target
                .split("; ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            out.push(HeldDeletion {
                room_id: room.id,
                mailbox: room.mailbox.to_string(),
                count,
                held_at: row.at,
            });
        }
        Ok(out)
    }

    async fn approve_deletions(
        &self,
        tenant: TenantId,
        room: RoomId,
        audit: &NewAuditEntry,
    ) -> Result<String, BackendError> {
        let deps = self
            .deps
            .as_ref()
            .map(|d| d.borrow().clone())
            .ok_or_else(|| failed("approving", "the engine is not running in this process"))?;
        let runtime = deps.tenant(tenant).map_err(|e| failed("the tenant is not loaded", e))?;
        let now = self.now();
        let window = orb_engine::reconcile::lifecycle_window(&runtime.policy, now);
        let mut entry = audit.clone();
        entry.action = "reconcile.mass_deletion_approved".into();
        entry.target = format!("room ({room})");
        self.store().append_audit(&entry).await.map_err(|e| failed("audit", e))?;
        let options = SweepOptions { approve_mass_deletion: true, ..SweepOptions::default() };
        let report = sweep_room_with(&deps, tenant, room, window, now, options)
            .await
            .map_err(|e| failed("the sweep failed (the approval stands; retry)", e))?;
        Ok(format!("Approved: {} change(s) queued.", report.jobs.total()))
    }

    async fn reject_deletions(
        &self,
        tenant: TenantId,
        room: RoomId,
        audit: &NewAuditEntry,
    ) -> Result<String, BackendError> {
        let deps = self
            .deps
            .as_ref()
            .map(|d| d.borrow().clone())
            .ok_or_else(|| failed("rejecting", "the engine is not running in this process"))?;
        let runtime = deps.tenant(tenant).map_err(|e| failed("the tenant is not loaded", e))?;
        let now = self.now();
        let window = orb_engine::reconcile::lifecycle_window(&runtime.policy, now);
        let mut entry = audit.clone();
        entry.action = "reconcile.mass_deletion_rejected".into();
        entry.target = format!("room ({room})");
        self.store().append_audit(&entry).await.map_err(|e| failed("audit", e))?;
        // The bookings gone on one side are written to it again, from the side that still has them.
        let options = SweepOptions { restore_held_deletions: true, ..SweepOptions::default() };
        let report = sweep_room_with(&deps, tenant, room, window, now, options)
            .await
            .map_err(|e| failed("the sweep failed (the rejection stands; retry)", e))?;
        Ok(rejected_message(&report))
    }

    fn seal_totp(&self, user: UserId, secret: &[u8]) -> Result<SealedTotp, BackendError> {
        seal_totp(&self.env.master, user, secret).map_err(|e| failed("sealing", e))
    }

    fn open_totp(&self, user: UserId, sealed: &SealedTotp) -> Result<Vec<u8>, BackendError> {
        open_totp(&self.env.master, user, sealed)
            .map_err(|e| failed("opening the second factor (is the master key the right one?)", e))
    }

    async fn sso_client_secret(&self, tenant: TenantId) -> Result<Option<SecretString>, BackendError> {
        crate::secrets::open(self.store(), &self.env.master, tenant, SECRET_SSO_CLIENT)
            .await
            .map_err(|e| failed("opening the single sign-on secret", format!("{e:#}")))
    }
}

/// What a rejection did, in words: how many bookings are written back to which side, and what is still held.
fn rejected_message(report: &orb_engine::reconcile::SweepReport) -> String {
    let to = |side: Side| report.restored_to.iter().filter(|(_, s)| *s == side).count();
    let mut back: Vec<String> = Vec::new();
    for side in [Side::Exchange, Side::Topdesk] {
        let n = to(side);
        if n > 0 {
            let (name, from) =
                if side == Side::Exchange { ("Exchange", "TOPdesk") } else { ("TOPdesk", "Exchange") };
            back.push(format!("{n} booking(s) are written back to {name} from {from}"));
        }
    }
    let mut out = if back.is_empty() {
        "Rejected: nothing is cancelled; no booking needs writing back".to_owned()
    } else {
        format!("Rejected: {}; nothing is cancelled", back.join(", and "))
    };
    if report.held_deletions > 0 {
        use std::fmt::Write as _;
        let _ = write!(
            out,
            "; {} deletion(s) could not be written back now and stay held",
            report.held_deletions
        );
    }
    out.push('.');
    out
}
