//! The admin portal's persistence (migration 5): users, sessions, recovery codes, login throttling, API
//! tokens, OIDC flows, the audit search, the dashboard figures and the bookings list's paging and filters.
//! Every case runs on SQLite, and on PostgreSQL when `ORB_TEST_POSTGRES_URL` is set, with the conformance
//! suite's harness.

#[path = "conformance/harness.rs"]
mod harness;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use orb_core::{
    AppointmentType, BookingRecord, EmailAddress, NewBooking, RoomId, RoomMailbox, Side, SyncStatus,
    TenantId, TenantName, TimeZoneName, TopdeskLocationId,
};
use orb_store::{
    AdminGuard, ApiScope, AuditFilter, BookingFilter, Lane, NewApiToken, NewAuditEntry, NewJob, NewRoom,
    NewSession, NewUser, OidcFlow, QueueStats, Role, SealedTotp, SessionStage, Store, StoreError, Tenant,
    User, UserId,
};
use serde_json::json;

use harness::Harness;

macro_rules! on_every_store {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let h = harness::sqlite().await;
                    super::$name(&h).await;
                }
            )+
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(h) = harness::postgres().await else { return };
                    super::$name(&h).await;
                }
            )+
        }
    };
}

on_every_store!(
    users_are_unique_by_email_across_tenants_and_audited,
    role_and_tenant_must_fit_on_create_and_on_role_change,
    users_are_listed_per_tenant_by_email,
    password_and_login_are_recorded_and_unknown_users_are_not_found,
    totp_enrolment_and_reset_clear_recovery_codes_and_the_step,
    a_totp_step_is_claimed_once_under_concurrency,
    a_recovery_code_works_once_under_concurrency,
    login_failures_are_counted_atomically_per_key_and_cleared,
    sessions_are_found_by_token_hash_listed_newest_first_and_ended,
    disabling_a_user_ends_its_sessions_and_revokes_its_tokens,
    disabling_races_with_login_and_never_leaves_a_session,
    a_guarded_change_never_removes_the_tenants_last_enabled_admin,
    two_admins_demoting_each_other_at_once_leave_one_admin,
    api_tokens_are_revoked_only_by_their_owner_and_audited,
    oidc_flows_are_taken_once_and_purged,
    audit_search_filters_by_tenant_actor_action_and_time,
    dashboard_figures_are_per_tenant,
    bookings_filter_by_organizer_and_failure_and_page,
);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap()
}

fn email(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

async fn tenant(store: &dyn Store, name: &str) -> Tenant {
    store.create_tenant(&TenantName::parse(name).unwrap(), t0()).await.unwrap()
}

fn audit(tenant: Option<TenantId>, action: &str, target: &str) -> NewAuditEntry {
    NewAuditEntry {
        tenant_id: tenant,
        at: t0(),
        actor: "admin@contoso.com".into(),
        action: action.into(),
        target: target.into(),
        ip: Some("192.0.2.7".into()),
    }
}

fn new_user(tenant: Option<TenantId>, address: &str, role: Role) -> NewUser {
    NewUser {
        tenant_id: tenant,
        email: email(address),
        role,
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        password_temporary: false,
    }
}

async fn user(s: &dyn Store, tenant: Option<TenantId>, address: &str, role: Role) -> User {
    s.create_user(&new_user(tenant, address, role), &audit(tenant, "user.create", address), t0())
        .await
        .unwrap()
}

fn session(user: UserId, token: u8) -> NewSession {
    NewSession {
        token_hash: vec![token; 32],
        user_id: user,
        stage: SessionStage::Full,
        source_ip: Some("192.0.2.7".into()),
        user_agent: Some("Firefox".into()),
    }
}

fn api_token(user: UserId, name: &str, token: u8) -> NewApiToken {
    NewApiToken {
        user_id: user,
        name: name.into(),
        token_hash: vec![token; 32],
        scope: ApiScope::Write,
        expires_at: Some(t0() + Duration::days(90)),
    }
}

fn sealed(n: u8) -> SealedTotp {
    SealedTotp { sealed: vec![n; 40], key_id: format!("key-{n}") }
}

fn is_not_found<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::NotFound { .. }))
}

fn is_invalid<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::InvalidArgument { .. }))
}

// ---- users ----

async fn users_are_unique_by_email_across_tenants_and_audited(h: &Harness) {
    let s = &*h.store;
    let a = tenant(s, "contoso").await;
    let b = tenant(s, "fabrikam").await;
    let created = user(s, Some(a.id), "Anna.Bakker@Contoso.com", Role::TenantAdmin).await;
    assert_eq!(created.email.as_str(), "anna.bakker@contoso.com");
    assert_eq!(created.tenant_id, Some(a.id));
    assert_eq!(created.role, Role::TenantAdmin);
    assert_eq!(created.created_at, t0());
    assert!(!created.totp_enabled && created.totp.is_none() && created.last_totp_step.is_none());
    assert!(!created.disabled && created.last_login_at.is_none());
    assert_eq!(s.get_user(created.id).await.unwrap(), created);
    assert_eq!(s.user_by_email(&email("ANNA.BAKKER@contoso.com")).await.unwrap(), created);
    // The address is unique across the installation: not in another tenant, not as an operator either.
    for (tenant, role) in
        [(Some(b.id), Role::TenantViewer), (Some(a.id), Role::TenantViewer), (None, Role::Operator)]
    {
        let err = s
            .create_user(
                &new_user(tenant, "anna.bakker@contoso.com", role),
                &audit(tenant, "user.create", "x"),
                t0(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
        assert!(!err.to_string().contains("anna"), "the error does not repeat the address: {err}");
    }
    let unknown = TenantId::generate(t0());
    assert!(is_not_found(
        s.create_user(
            &new_user(Some(unknown), "x@contoso.com", Role::TenantViewer),
            &audit(None, "user.create", "x"),
            t0()
        )
        .await
    ));
    // One audit row for the one user created; the refused ones wrote nothing.
    let rows = s.search_audit(None, &AuditFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].action.as_str(), rows[0].tenant_id), ("user.create", Some(a.id)));
    assert_eq!(s.list_users(None).await.unwrap().len(), 1);
    assert!(is_not_found(s.user_by_email(&email("nobody@contoso.com")).await));
    assert!(is_not_found(s.get_user(UserId(created.id.0 + 1000)).await));
}

async fn role_and_tenant_must_fit_on_create_and_on_role_change(h: &Harness) {
    let s = &*h.store;
    let a = tenant(s, "contoso").await;
    for bad in [
        new_user(Some(a.id), "op@contoso.com", Role::Operator),
        new_user(None, "admin@contoso.com", Role::TenantAdmin),
        new_user(None, "viewer@contoso.com", Role::TenantViewer),
    ] {
        let err = s.create_user(&bad, &audit(None, "user.create", "x"), t0()).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidArgument { .. }), "{bad:?}: {err:?}");
    }
    assert!(s.list_users(None).await.unwrap().is_empty(), "nothing half-written");
    let op = user(s, None, "op@example.com", Role::Operator).await;
    let admin = user(s, Some(a.id), "admin@contoso.com", Role::TenantAdmin).await;
    // Within a tenant the role may change; across the operator line it may not (in either direction).
    s.set_user_role(admin.id, Role::TenantViewer, AdminGuard::Off, &audit(Some(a.id), "user.role", "viewer"))
        .await
        .unwrap();
    assert_eq!(s.get_user(admin.id).await.unwrap().role, Role::TenantViewer);
    s.set_user_role(admin.id, Role::TenantAdmin, AdminGuard::Off, &audit(Some(a.id), "user.role", "admin"))
        .await
        .unwrap();
    let err = s
        .set_user_role(admin.id, Role::Operator, AdminGuard::Off, &audit(None, "user.role", "op"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument { .. }), "{err:?}");
    assert!(err.to_string().contains("create a new user"), "{err}");
    assert!(is_invalid(
        s.set_user_role(op.id, Role::TenantAdmin, AdminGuard::Off, &audit(None, "user.role", "x")).await
    ));
    s.set_user_role(op.id, Role::Operator, AdminGuard::Off, &audit(None, "user.role", "same")).await.unwrap();
    assert_eq!(s.get_user(op.id).await.unwrap().role, Role::Operator);
    assert_eq!(s.get_user(admin.id).await.unwrap().role, Role::TenantAdmin);
    assert!(is_not_found(
        s.set_user_role(
            UserId(9999),
            Role::TenantViewer,
            AdminGuard::KeepOne,
            &audit(None, "user.role", "x")
        )
        .await
    ));
    let roles: Vec<_> = s
        .search_audit(
            None,
            &AuditFilter { action_prefix: Some("user.role".into()), ..AuditFilter::default() },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.target)
        .collect();
    assert_eq!(roles, ["same", "admin", "viewer"], "only the changes made are audited");
}

async fn users_are_listed_per_tenant_by_email(h: &Harness) {
    let s = &*h.store;
    let a = tenant(s, "contoso").await;
    let b = tenant(s, "fabrikam").await;
    user(s, Some(a.id), "zoe@contoso.com", Role::TenantViewer).await;
    user(s, Some(b.id), "bob@fabrikam.com", Role::TenantAdmin).await;
    user(s, Some(a.id), "anna@contoso.com", Role::TenantAdmin).await;
    user(s, None, "op@example.com", Role::Operator).await;
    let names = |users: Vec<User>| users.into_iter().map(|u| u.email.to_string()).collect::<Vec<_>>();
    assert_eq!(names(s.list_users(Some(a.id)).await.unwrap()), ["anna@contoso.com", "zoe@contoso.com"]);
    assert_eq!(names(s.list_users(Some(b.id)).await.unwrap()), ["bob@fabrikam.com"]);
    assert_eq!(
        names(s.list_users(None).await.unwrap()),
        ["anna@contoso.com", "bob@fabrikam.com", "op@example.com", "zoe@contoso.com"]
    );
    let c = tenant(s, "northwind").await;
    assert!(s.list_users(Some(c.id)).await.unwrap().is_empty());
}

async fn password_and_login_are_recorded_and_unknown_users_are_not_found(h: &Harness) {
    let s = &*h.store;
    let a = tenant(s, "contoso").await;
    let u = user(s, Some(a.id), "anna@contoso.com", Role::TenantAdmin).await;
    let sso = s
        .create_user(
            &NewUser { password_hash: None, ..new_user(Some(a.id), "sso@contoso.com", Role::TenantViewer) },
            &audit(Some(a.id), "user.create", "sso"),
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(sso.password_hash, None);
    assert!(!u.password_temporary && !sso.password_temporary);
    // An invited user's password is temporary until they set their own; a password-less (SSO) user's
    // never is.
    let invited = s
        .create_user(
            &NewUser {
                password_temporary: true,
                ..new_user(Some(a.id), "new@contoso.com", Role::TenantViewer)
            },
            &audit(Some(a.id), "user.create", "new"),
            t0(),
        )
        .await
        .unwrap();
    assert!(invited.password_temporary);
    assert!(s.get_user(invited.id).await.unwrap().password_temporary, "as stored");
    let sso_invited = NewUser {
        password_hash: None,
        password_temporary: true,
        ..new_user(Some(a.id), "sso2@contoso.com", Role::TenantViewer)
    };
    let sso_invited =
        s.create_user(&sso_invited, &audit(Some(a.id), "user.create", "sso2"), t0()).await.unwrap();
    assert!(!sso_invited.password_temporary, "no password, nothing to change");
    s.set_user_password(invited.id, "$argon2id$own", false, &audit(Some(a.id), "user.password", "new"))
        .await
        .unwrap();
    assert!(!s.get_user(invited.id).await.unwrap().password_temporary, "their own choice clears it");
    s.set_user_password(u.id, "$argon2id$new", true, &audit(Some(a.id), "user.password", "anna"))
        .await
        .unwrap();
    assert!(s.get_user(u.id).await.unwrap().password_temporary, "a reset by someone else sets it");
    assert_eq!(s.get_user(u.id).await.unwrap().password_hash.as_deref(), Some("$argon2id$new"));
    assert_eq!(s.get_user(sso.id).await.unwrap().password_hash, None, "only that user's");
    let later = t0() + Duration::hours(3);
    s.record_login(u.id, later).await.unwrap();
    assert_eq!(s.get_user(u.id).await.unwrap().last_login_at, Some(later));
    let nobody = UserId(u.id.0 + sso.id.0 + 100);
    assert!(is_not_found(s.set_user_password(nobody, "x", false, &audit(None, "user.password", "x")).await));
    assert!(is_not_found(s.record_login(nobody, later).await));
    assert!(is_not_found(
        s.set_user_disabled(nobody, true, AdminGuard::Off, &audit(None, "user.disable", "x")).await
    ));
    assert!(is_not_found(s.set_user_totp(nobody, Some(&sealed(1)), false, None).await));
    let actions: Vec<_> =
        s.search_audit(None, &AuditFilter::default()).await.unwrap().into_iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        ["user.password", "user.password", "user.create", "user.create", "user.create", "user.create"],
        "no audit row for what failed"
    );
}

async fn totp_enrolment_and_reset_clear_recovery_codes_and_the_step(h: &Harness) {
    let s = &*h.store;
    let a = tenant(s, "contoso").await;
    let u = user(s, Some(a.id), "anna@contoso.com", Role::TenantAdmin).await;
    let other = user(s, Some(a.id), "bob@contoso.com", Role::TenantAdmin).await;
    // Enrolment: the secret first (not enabled), then confirmed.
    s.set_user_totp(u.id, Some(&sealed(1)), false, None).await.unwrap();
    let got = s.get_user(u.id).await.unwrap();
    assert_eq!((got.totp, got.totp_enabled), (Some(sealed(1)), false));
    s.set_user_totp(u.id, Some(&sealed(1)), true, Some(&audit(Some(a.id), "user.mfa.enable", "anna")))
        .await
        .unwrap();
    assert!(s.get_user(u.id).await.unwrap().totp_enabled);
    assert!(s.claim_totp_step(u.id, 1000).await.unwrap());
    let codes: Vec<Vec<u8>> = (0..10u8).map(|n| vec![n; 32]).collect();
    s.replace_recovery_codes(u.id, &codes, &audit(Some(a.id), "user.recovery", "anna")).await.unwrap();
    s.replace_recovery_codes(other.id, &codes[..2], &audit(Some(a.id), "user.recovery", "bob"))
        .await
        .unwrap();
    assert_eq!(s.count_recovery_codes(u.id).await.unwrap(), 10);
    // Enabling without a secret is refused and changes nothing.
    assert!(is_invalid(s.set_user_totp(u.id, None, true, None).await));
    assert_eq!(s.count_recovery_codes(u.id).await.unwrap(), 10);
    // The MFA reset: secret, enabled flag, replay guard and recovery codes go; the other user keeps theirs.
    s.set_user_totp(u.id, None, false, Some(&audit(Some(a.id), "user.mfa.reset", "anna"))).await.unwrap();
    let reset = s.get_user(u.id).await.unwrap();
    assert_eq!((reset.totp, reset.totp_enabled, reset.last_totp_step), (None, false, None));
    assert_eq!(s.count_recovery_codes(u.id).await.unwrap(), 0);
    assert_eq!(s.count_recovery_codes(other.id).await.unwrap(), 2);
    assert!(s.claim_totp_step(u.id, 999).await.unwrap(), "the replay guard starts over after a reset");
    let actions: Vec<_> = s
        .search_audit(
            Some(a.id),
            &AuditFilter { action_prefix: Some("user.mfa".into()), ..AuditFilter::default() },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["user.mfa.reset", "user.mfa.enable"]);
}

async fn a_totp_step_is_claimed_once_under_concurrency(h: &Harness) {
    let a = tenant(&*h.store, "contoso").await;
    let u = user(&*h.store, Some(a.id), "anna@contoso.com", Role::TenantAdmin).await;
    let second = h.second_store().await;
    let stores = [h.store.clone(), second];
    for step in [100_i64, 101, 105] {
        let barrier = Arc::new(tokio::sync::Barrier::new(12));
        let mut tasks = Vec::new();
        for n in 0..12 {
            let (store, barrier) = (stores[n % 2].clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store.claim_totp_step(u.id, step).await.unwrap()
            }));
        }
        let mut winners = 0;
        for task in tasks {
            winners += usize::from(task.await.unwrap());
        }
        assert_eq!(winners, 1, "step {step}: exactly one claim wins");
    }
    let s = &*h.store;
    assert_eq!(s.get_user(u.id).await.unwrap().last_totp_step, Some(105));
    assert!(!s.claim_totp_step(u.id, 105).await.unwrap(), "a replay of the last step");
    assert!(!s.claim_totp_step(u.id, 104).await.unwrap(), "an older step");
    assert!(s.claim_totp_step(u.id, 106).await.unwrap());
    assert!(is_not_found(s.claim_totp_step(UserId(u.id.0 + 1), 1).await));
}

async fn a_recovery_code_works_once_under_concurrency(h: &Harness) {
    let a = tenant(&*h.store, "contoso").await;
    let u = user(&*h.store, Some(a.id), "anna@contoso.com", Role::TenantAdmin).await;
    let other = user(&*h.store, Some(a.id), "bob@contoso.com", Role::TenantAdmin).await;
    let s = &*h.store;
    let codes: Vec<Vec<u8>> = (1..=3u8).map(|n| vec![n; 32]).collect();
    // A duplicate in the list is kept once.
    let mut with_dup = codes.clone();
    with_dup.push(codes[0].clone());
    s.replace_recovery_codes(u.id, &with_dup, &audit(Some(a.id), "user.recovery", "anna")).await.unwrap();
    assert_eq!(s.count_recovery_codes(u.id).await.unwrap(), 3);
    assert!(!s.use_recovery_code(other.id, &codes[0]).await.unwrap(), "another user's code is not theirs");
    let second = h.second_store().await;
    let stores = [h.store.clone(), second];
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let mut tasks = Vec::new();
    for n in 0..10 {
        let (store, barrier, code) = (stores[n % 2].clone(), barrier.clone(), codes[1].clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.use_recovery_code(u.id, &code).await.unwrap()
        }));
    }
    let mut used = 0;
    for task in tasks {
        used += usize::from(task.await.unwrap());
    }
    assert_eq!(used, 1, "a code works exactly once");
    assert_eq!(s.count_recovery_codes(u.id).await.unwrap(), 2);
    assert!(!s.use_recovery_code(u.id, &[0xEE; 32]).await.unwrap(), "an unknown code");
    // A new set replaces the old one entirely.
    s.replace_recovery_codes(u.id, &[vec![9; 32]], &audit(Some(a.id), "user.recovery", "anna"))
        .await
        .unwrap();
    assert_eq!(s.count_recovery_codes(u.id).await.unwrap(), 1);
    assert!(!s.use_recovery_code(u.id, &codes[0]).await.unwrap(), "old codes are gone");
    assert!(s.use_recovery_code(u.id, &[9; 32]).await.unwrap());
    assert!(is_not_found(
        s.replace_recovery_codes(UserId(9999), &codes, &audit(None, "user.recovery", "x")).await
    ));
}

async fn login_failures_are_counted_atomically_per_key_and_cleared(h: &Harness) {
    let s = &*h.store;
    assert_eq!(s.login_throttle("user:42").await.unwrap(), None);
    let second = h.second_store().await;
    let stores = [h.store.clone(), second];
    let mut tasks = Vec::new();
    for n in 0..20i64 {
        let store = stores[usize::from(n % 2 == 0)].clone();
        tasks.push(tokio::spawn(async move {
            store.record_login_failure("user:42", t0() + Duration::seconds(n)).await.unwrap().failures
        }));
    }
    let mut seen = BTreeSet::new();
    for task in tasks {
        seen.insert(task.await.unwrap());
    }
    assert_eq!(
        seen,
        (1..=20).collect::<BTreeSet<u32>>(),
        "every failure counted once, each saw its own count"
    );
    assert_eq!(s.login_throttle("user:42").await.unwrap().map(|t| t.failures), Some(20));
    let later = t0() + Duration::minutes(5);
    let t = s.record_login_failure("ip:192.0.2.7", later).await.unwrap();
    assert_eq!((t.failures, t.last_failure_at), (1, later));
    let t = s.record_login_failure("ip:192.0.2.7", later + Duration::seconds(1)).await.unwrap();
    assert_eq!((t.failures, t.last_failure_at), (2, later + Duration::seconds(1)));
    s.clear_login_failures("user:42").await.unwrap();
    assert_eq!(s.login_throttle("user:42").await.unwrap(), None);
    assert_eq!(
        s.login_throttle("ip:192.0.2.7").await.unwrap().map(|t| t.failures),
        Some(2),
        "other keys kept"
    );
    s.clear_login_failures("user:42").await.unwrap();
    assert_eq!(s.record_login_failure("user:42", later).await.unwrap().failures, 1, "counting starts over");
}

// ---- sessions and tokens ----

async fn sessions_are_found_by_token_hash_listed_newest_first_and_ended(h: &Harness) {
    let s = &*h.store;
    let a = tenant(s, "contoso").await;
    let u = user(s, Some(a.id), "anna@contoso.com", Role::TenantAdmin).await;
    let other = user(s, Some(a.id), "bob@contoso.com", Role::TenantViewer).await;
    let first = s
        .create_session(&NewSession { stage: SessionStage::SecondFactor, ..session(u.id, 1) }, t0())
        .await
        .unwrap();
    assert_eq!(first.stage, SessionStage::SecondFactor);
    assert_eq!((first.created_at, first.last_seen_at), (t0(), t0()));
    assert_eq!(first.user_agent.as_deref(), Some("Firefox"));
    assert!(!format!("{first:?}").contains("token_hash"), "Debug leaves the hash out");
    let second = s.create_session(&session(u.id, 2), t0() + Duration::minutes(1)).await.unwrap();
    let theirs = s.create_session(&session(other.id, 3), t0()).await.unwrap();
    assert_eq!(s.session_by_token_hash(&[1; 32]).await.unwrap(), Some(first.clone()));
    assert_eq!(s.session_by_token_hash(&[7; 32]).await.unwrap(), None);
    let err = s.create_session(&session(other.id, 1), t0()).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert!(is_not_found(s.create_session(&session(UserId(9999), 9), t0()).await));
    let seen = t0() + Duration::minutes(20);
    s.touch_session(first.id, seen).await.unwrap();
    assert_eq!(s.session_by_token_hash(&[1; 32]).await.unwrap().unwrap().last_seen_at, seen);
    let ids = |v: Vec<orb_store::SessionRow>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(s.list_sessions(u.id).await.unwrap()), [second.id, first.id], "newest first");
    // A user can end only their own sessions by id.
    assert!(!s.delete_user_session(other.id, first.id).await.unwrap());
    assert!(s.delete_user_session(u.id, first.id).await.unwrap());
    assert!(!s.delete_user_session(u.id, first.id).await.unwrap(), "gone already");
    assert!(is_not_found(s.touch_session(first.id, seen).await));
    s.delete_session(second.id).await.unwrap();
    s.delete_session(second.id).await.unwrap();
    assert!(s.list_sessions(u.id).await.unwrap().is_empty());
    s.create_session(&session(u.id, 4), t0()).await.unwrap();
    s.create_session(&session(u.id, 5), t0()).await.unwrap();
    assert_eq!(s.delete_sessions_of(u.id).await.unwrap(), 2);
    assert_eq!(s.delete_sessions_of(u.id).await.unwrap(), 0);
    assert_eq!(ids(s.list_sessions(other.id).await.unwrap()), [theirs.id], "the other user's are untouched");
}

async fn disabling_a_user_ends_its_sessions_and_revokes_its_tokens(h: &Harness) {
    let s = &*h.store;
    let a = tenant(s, "contoso").await;
    let u = user(s, Some(a.id), "anna@contoso.com", Role::TenantAdmin).await;
    let other = user(s, Some(a.id), "bob@contoso.com", Role::TenantAdmin).await;
    s.create_session(&session(u.id, 1), t0()).await.unwrap();
    s.create_session(&session(u.id, 2), t0()).await.unwrap();
    let kept = s.create_session(&session(other.id, 3), t0()).await.unwrap();
    let token = s
        .create_api_token(&api_token(u.id, "ci", 10), &audit(Some(a.id), "token.create", "ci"), t0())
        .await
        .unwrap();
    let other_token = s
        .create_api_token(&api_token(other.id, "ci", 11), &audit(Some(a.id), "token.create", "ci"), t0())
        .await
        .unwrap();
    s.set_user_disabled(u.id, true, AdminGuard::Off, &audit(Some(a.id), "user.disable", "anna"))
        .await
        .unwrap();
    assert!(s.get_user(u.id).await.unwrap().disabled);
    assert!(s.list_sessions(u.id).await.unwrap().is_empty());
    assert_eq!(s.session_by_token_hash(&[1; 32]).await.unwrap(), None);
    let revoked = s.api_token_by_hash(&[10; 32]).await.unwrap().unwrap();
    assert!(revoked.revoked && !revoked.is_active(t0()));
    assert_eq!(revoked.id, token.id);
    // Nothing new for a disabled user.
    let err = s.create_session(&session(u.id, 4), t0()).await.unwrap_err();
    assert!(matches!(err, StoreError::UserDisabled { user } if user == u.id.0), "{err:?}");
    assert!(err.to_string().contains("enable the user"), "{err}");
    let err = s
        .create_api_token(&api_token(u.id, "new", 12), &audit(Some(a.id), "token.create", "new"), t0())
        .await;
    assert!(matches!(err, Err(StoreError::UserDisabled { .. })), "{err:?}");
    // Other users are untouched.
    assert_eq!(s.list_sessions(other.id).await.unwrap(), [kept]);
    assert_eq!(s.api_token_by_hash(&[11; 32]).await.unwrap(), Some(other_token));
    // Enabling again brings neither sessions nor tokens back.
    s.set_user_disabled(u.id, false, AdminGuard::Off, &audit(Some(a.id), "user.enable", "anna"))
        .await
        .unwrap();
    assert!(!s.get_user(u.id).await.unwrap().disabled);
    assert!(s.list_sessions(u.id).await.unwrap().is_empty());
    assert!(s.list_api_tokens(u.id).await.unwrap().iter().all(|t| t.revoked));
    s.create_session(&session(u.id, 4), t0()).await.unwrap();
    let actions: Vec<_> = s
        .search_audit(
            Some(a.id),
            &AuditFilter { action_prefix: Some("user.".into()), ..AuditFilter::default() },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["user.enable", "user.disable", "user.create", "user.create"]);
}

async fn disabling_races_with_login_and_never_leaves_a_session(h: &Harness) {
    let a = tenant(&*h.store, "contoso").await;
    let u = user(&*h.store, Some(a.id), "anna@contoso.com", Role::TenantAdmin).await;
    let second = h.second_store().await;
    for round in 0..8u8 {
        h.store
            .set_user_disabled(u.id, false, AdminGuard::Off, &audit(Some(a.id), "user.enable", "anna"))
            .await
            .unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let (login_store, login_barrier) = (second.clone(), barrier.clone());
        let login = tokio::spawn(async move {
            login_barrier.wait().await;
            login_store.create_session(&session(u.id, round), t0()).await
        });
        let (disable_store, disable_barrier) = (h.store.clone(), barrier);
        let disable = tokio::spawn(async move {
            disable_barrier.wait().await;
            disable_store
                .set_user_disabled(u.id, true, AdminGuard::Off, &audit(Some(a.id), "user.disable", "anna"))
                .await
        });
        disable.await.unwrap().unwrap();
        match login.await.unwrap() {
            Ok(_) | Err(StoreError::UserDisabled { .. }) => {}
            Err(other) => panic!("round {round}: {other:?}"),
        }
        assert!(h.store.list_sessions(u.id).await.unwrap().is_empty(), "round {round}: a session survived");
    }
}

fn is_last_admin(r: Result<(), StoreError>, email: &str) -> bool {
    match r {
        Err(e @ StoreError::LastAdmin { .. }) => {
            let said = e.to_string();
            assert!(said.contains(email) && said.contains("make another user tenant-admin first"), "{said}");
            true
        }
        _ => false,
    }
}

async fn a_guarded_change_never_removes_the_tenants_last_enabled_admin(h: &Harness) {
    let s = &*h.store;
    let a = tenant(s, "contoso").await;
    let b = tenant(s, "fabrikam").await;
    let anna = user(s, Some(a.id), "anna@contoso.com", Role::TenantAdmin).await;
    let bob = user(s, Some(a.id), "bob@contoso.com", Role::TenantAdmin).await;
    let vera = user(s, Some(a.id), "vera@contoso.com", Role::TenantViewer).await;
    // Another tenant's admin does not count for this one.
    user(s, Some(b.id), "admin@fabrikam.com", Role::TenantAdmin).await;
    let role = |what| audit(Some(a.id), "user.role", what);
    let guard = AdminGuard::KeepOne;
    // Two enabled admins: one may go; then the other is the last, by role or by disabling.
    s.set_user_role(bob.id, Role::TenantViewer, guard, &role("bob")).await.unwrap();
    assert!(is_last_admin(
        s.set_user_role(anna.id, Role::TenantViewer, guard, &role("anna")).await,
        "anna@contoso.com"
    ));
    let disable = audit(Some(a.id), "user.disable", "anna");
    assert!(is_last_admin(s.set_user_disabled(anna.id, true, guard, &disable).await, "anna@contoso.com"));
    // Nothing was written by a refusal: the role, the enabled flag, the sessions and the audit.
    let sid = s.create_session(&session(anna.id, 1), t0()).await.unwrap();
    assert!(is_last_admin(s.set_user_disabled(anna.id, true, guard, &disable).await, "anna@contoso.com"));
    let kept = s.get_user(anna.id).await.unwrap();
    assert_eq!((kept.role, kept.disabled), (Role::TenantAdmin, false));
    assert_eq!(s.list_sessions(anna.id).await.unwrap().len(), 1, "{sid:?}");
    let written: Vec<String> = s
        .search_audit(Some(a.id), &AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action.starts_with("user.role") || e.action.starts_with("user.disable"))
        .map(|e| e.target)
        .collect();
    assert_eq!(written, ["bob"], "only the change that was made is audited");
    // Changes that keep an admin pass under the guard: a viewer's, promoting, making the last admin an admin
    // again, enabling.
    s.set_user_disabled(vera.id, true, guard, &audit(Some(a.id), "user.disable", "vera")).await.unwrap();
    s.set_user_role(anna.id, Role::TenantAdmin, guard, &role("anna again")).await.unwrap();
    s.set_user_disabled(vera.id, false, guard, &audit(Some(a.id), "user.enable", "vera")).await.unwrap();
    // A disabled admin does not count; an enabled one does.
    s.set_user_role(bob.id, Role::TenantAdmin, guard, &role("bob admin")).await.unwrap();
    s.set_user_disabled(bob.id, true, AdminGuard::Off, &audit(Some(a.id), "user.disable", "bob"))
        .await
        .unwrap();
    assert!(is_last_admin(
        s.set_user_role(anna.id, Role::TenantViewer, guard, &role("anna")).await,
        "anna@contoso.com"
    ));
    s.set_user_disabled(bob.id, false, guard, &audit(Some(a.id), "user.enable", "bob")).await.unwrap();
    s.set_user_disabled(anna.id, true, guard, &disable).await.unwrap();
    // Without the guard (an operator) the last admin may go; an unknown user is still not found.
    s.set_user_role(bob.id, Role::TenantViewer, AdminGuard::Off, &role("bob by an operator")).await.unwrap();
    assert!(
        s.list_users(Some(a.id)).await.unwrap().iter().all(|u| u.role != Role::TenantAdmin || u.disabled)
    );
    assert!(is_not_found(s.set_user_disabled(UserId(9999), true, guard, &disable).await));
}

async fn two_admins_demoting_each_other_at_once_leave_one_admin(h: &Harness) {
    let a = tenant(&*h.store, "contoso").await;
    let anna = user(&*h.store, Some(a.id), "anna@contoso.com", Role::TenantAdmin).await;
    let bob = user(&*h.store, Some(a.id), "bob@contoso.com", Role::TenantAdmin).await;
    let second = h.second_store().await;
    for round in 0..12u8 {
        // Both admins again, then each demotes (even rounds) or disables (odd rounds) the other, from two
        // store instances (two ORB processes) at the same moment.
        for u in [anna.id, bob.id] {
            let back = audit(Some(a.id), "user.role", "reset");
            h.store.set_user_role(u, Role::TenantAdmin, AdminGuard::Off, &back).await.unwrap();
            h.store.set_user_disabled(u, false, AdminGuard::Off, &back).await.unwrap();
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let mut tasks = Vec::new();
        for (store, target) in [(h.store.clone(), bob.id), (second.clone(), anna.id)] {
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let what = audit(Some(a.id), "user.role", "each other");
                if round % 2 == 0 {
                    store.set_user_role(target, Role::TenantViewer, AdminGuard::KeepOne, &what).await
                } else {
                    store.set_user_disabled(target, true, AdminGuard::KeepOne, &what).await
                }
            }));
        }
        let mut done = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => done += 1,
                Err(StoreError::LastAdmin { .. }) => {}
                Err(other) => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(done, 1, "round {round}: exactly one of the two changes is made");
        let admins = h
            .store
            .list_users(Some(a.id))
            .await
            .unwrap()
            .into_iter()
            .filter(|u| u.role == Role::TenantAdmin && !u.disabled)
            .count();
        assert_eq!(admins, 1, "round {round}: the tenant keeps one enabled admin");
    }
}

async fn api_tokens_are_revoked_only_by_their_owner_and_audited(h: &Harness) {
    let s = &*h.store;
    let a = tenant(s, "contoso").await;
    let u = user(s, Some(a.id), "anna@contoso.com", Role::TenantAdmin).await;
    let other = user(s, Some(a.id), "bob@contoso.com", Role::TenantAdmin).await;
    let ci = s
        .create_api_token(&api_token(u.id, "ci", 1), &audit(Some(a.id), "token.create", "ci"), t0())
        .await
        .unwrap();
    assert_eq!((ci.name.as_str(), ci.scope, ci.user_id), ("ci", ApiScope::Write, u.id));
    assert_eq!(
        (ci.created_at, ci.expires_at, ci.last_used_at),
        (t0(), Some(t0() + Duration::days(90)), None)
    );
    assert!(ci.is_active(t0()) && !ci.is_active(t0() + Duration::days(90)));
    let forever = s
        .create_api_token(
            &NewApiToken { scope: ApiScope::Read, expires_at: None, ..api_token(u.id, "report", 2) },
            &audit(Some(a.id), "token.create", "report"),
            t0(),
        )
        .await
        .unwrap();
    let err = s
        .create_api_token(&api_token(other.id, "dup", 1), &audit(Some(a.id), "token.create", "dup"), t0())
        .await;
    assert!(matches!(err, Err(StoreError::AlreadyExists { .. })), "{err:?}");
    assert!(is_not_found(
        s.create_api_token(&api_token(UserId(9999), "x", 3), &audit(None, "token.create", "x"), t0()).await
    ));
    assert_eq!(s.api_token_by_hash(&[1; 32]).await.unwrap(), Some(ci.clone()));
    assert_eq!(s.api_token_by_hash(&[9; 32]).await.unwrap(), None);
    let used = t0() + Duration::hours(1);
    s.touch_api_token(ci.id, used).await.unwrap();
    assert_eq!(s.api_token_by_hash(&[1; 32]).await.unwrap().unwrap().last_used_at, Some(used));
    assert!(is_not_found(s.touch_api_token(ci.id + forever.id + 100, used).await));
    let names = |v: Vec<orb_store::ApiTokenRow>| v.into_iter().map(|t| t.name).collect::<Vec<_>>();
    assert_eq!(names(s.list_api_tokens(u.id).await.unwrap()), ["ci", "report"]);
    assert!(s.list_api_tokens(other.id).await.unwrap().is_empty());
    // Another user cannot revoke it: NotFound, nothing written, not even the audit row.
    let err = s.revoke_api_token(other.id, ci.id, &audit(Some(a.id), "token.revoke", "ci")).await;
    assert!(matches!(err, Err(StoreError::NotFound { .. })), "{err:?}");
    assert!(!s.api_token_by_hash(&[1; 32]).await.unwrap().unwrap().revoked);
    s.revoke_api_token(u.id, ci.id, &audit(Some(a.id), "token.revoke", "ci")).await.unwrap();
    assert!(s.api_token_by_hash(&[1; 32]).await.unwrap().unwrap().revoked);
    assert!(!s.api_token_by_hash(&[2; 32]).await.unwrap().unwrap().revoked, "only that token");
    let actions: Vec<_> = s
        .search_audit(
            Some(a.id),
            &AuditFilter { action_prefix: Some("token.".into()), ..AuditFilter::default() },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.target))
        .collect();
    assert_eq!(
        actions,
        [
            ("token.revoke".into(), "ci".into()),
            ("token.create".into(), "report".into()),
            ("token.create".into(), "ci".into())
        ]
    );
}

async fn oidc_flows_are_taken_once_and_purged(h: &Harness) {
    let s = &*h.store;
    let a = tenant(s, "contoso").await;
    let flow = |n: u8, at: DateTime<Utc>| OidcFlow {
        state_hash: vec![n; 32],
        tenant_id: a.id,
        nonce: format!("nonce-{n}"),
        pkce_verifier: format!("verifier-{n}"),
        return_to: Some("/rooms".into()),
        created_at: at,
    };
    s.put_oidc_flow(&flow(1, t0())).await.unwrap();
    let err = s.put_oidc_flow(&flow(1, t0())).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert!(is_not_found(
        s.put_oidc_flow(&OidcFlow { tenant_id: TenantId::generate(t0()), ..flow(2, t0()) }).await
    ));
    assert_eq!(s.take_oidc_flow(&[1; 32]).await.unwrap(), Some(flow(1, t0())));
    assert_eq!(s.take_oidc_flow(&[1; 32]).await.unwrap(), None, "taken once");
    // Two answers racing for one flow: one gets it.
    s.put_oidc_flow(&flow(3, t0())).await.unwrap();
    let second = h.second_store().await;
    let (x, y) = tokio::join!(h.store.take_oidc_flow(&[3; 32]), second.take_oidc_flow(&[3; 32]));
    assert_eq!(usize::from(x.unwrap().is_some()) + usize::from(y.unwrap().is_some()), 1);
    s.put_oidc_flow(&flow(4, t0())).await.unwrap();
    s.put_oidc_flow(&flow(5, t0() + Duration::minutes(10))).await.unwrap();
    assert_eq!(
        s.purge_oidc_flows(t0() + Duration::minutes(10)).await.unwrap(),
        1,
        "created before the cutoff"
    );
    assert_eq!(s.take_oidc_flow(&[4; 32]).await.unwrap(), None);
    assert!(s.take_oidc_flow(&[5; 32]).await.unwrap().is_some());
}

// ---- audit search and dashboard ----

async fn audit_search_filters_by_tenant_actor_action_and_time(h: &Harness) {
    let s = &*h.store;
    let a = tenant(s, "contoso").await;
    let b = tenant(s, "fabrikam").await;
    let entry = |tenant: Option<TenantId>, minute: i64, actor: &str, action: &str| NewAuditEntry {
        tenant_id: tenant,
        at: t0() + Duration::minutes(minute),
        actor: actor.into(),
        action: action.into(),
        target: format!("{minute}"),
        ip: None,
    };
    for e in [
        entry(Some(a.id), 0, "anna@contoso.com", "user.create"),
        entry(Some(a.id), 1, "anna@contoso.com", "room.disable"),
        entry(Some(b.id), 2, "bob@fabrikam.com", "user.create"),
        entry(None, 3, "cli", "keys.rotate"),
        entry(Some(a.id), 4, "system", "users.sync"),
        entry(Some(a.id), 5, "anna@contoso.com", "userXcreate"),
        entry(Some(a.id), 6, "bob@fabrikam.com", "user.disable"),
    ] {
        s.append_audit(&e).await.unwrap();
    }
    let check = |tenant: Option<TenantId>, filter: AuditFilter, expected: &'static [&'static str]| {
        let store = h.store.clone();
        async move {
            let got: Vec<String> =
                store.search_audit(tenant, &filter).await.unwrap().into_iter().map(|e| e.target).collect();
            assert_eq!(got, expected, "{tenant:?} {filter:?}");
        }
    };
    let f = AuditFilter::default;
    check(None, f(), &["6", "5", "4", "3", "2", "1", "0"]).await;
    check(Some(a.id), f(), &["6", "5", "4", "1", "0"]).await;
    check(Some(b.id), f(), &["2"]).await;
    check(Some(a.id), AuditFilter { actor: Some("anna@contoso.com".into()), ..f() }, &["5", "1", "0"]).await;
    check(Some(b.id), AuditFilter { actor: Some("anna@contoso.com".into()), ..f() }, &[]).await;
    // A prefix is literal text: `user.` is not `users.` and `_`/`%` match only themselves.
    check(None, AuditFilter { action_prefix: Some("user.".into()), ..f() }, &["6", "2", "0"]).await;
    check(None, AuditFilter { action_prefix: Some("user_".into()), ..f() }, &[]).await;
    check(None, AuditFilter { action_prefix: Some("user%".into()), ..f() }, &[]).await;
    check(None, AuditFilter { action_prefix: Some("USER.".into()), ..f() }, &[]).await;
    // `since` is inclusive, `until` exclusive.
    let at = |m: i64| Some(t0() + Duration::minutes(m));
    check(None, AuditFilter { since: at(2), until: at(5), ..f() }, &["4", "3", "2"]).await;
    check(
        Some(a.id),
        AuditFilter { since: at(1), action_prefix: Some("user".into()), ..f() },
        &["6", "5", "4"],
    )
    .await;
    check(None, AuditFilter { limit: 2, ..f() }, &["6", "5"]).await;
    check(None, AuditFilter { limit: 0, ..f() }, &[]).await;
    assert_eq!(AuditFilter::default().limit, 200);
}

async fn dashboard_figures_are_per_tenant(h: &Harness) {
    let s = &*h.store;
    let a = tenant(s, "contoso").await;
    let b = tenant(s, "fabrikam").await;
    let lane = |t: &Tenant, key: &str| Lane { tenant_id: t.id, key: key.into() };
    let job = |l: Lane, run_at: Option<DateTime<Utc>>| NewJob {
        lane: l,
        kind: "sync.observation".into(),
        payload: json!({}),
        correlation_id: None,
        run_at,
    };
    // Tenant A: one dead, one running, one due, one not due yet. Tenant B: one due, long ago.
    s.enqueue(&job(lane(&a, "dead"), None), t0() - Duration::hours(1)).await.unwrap();
    let claimed = s.claim_job("w", t0() - Duration::hours(1), Duration::minutes(5)).await.unwrap().unwrap();
    s.fail_job(&claimed.lease, "refused", None, t0() - Duration::hours(1)).await.unwrap();
    s.enqueue(&job(lane(&a, "running"), None), t0() - Duration::minutes(30)).await.unwrap();
    s.claim_job("w", t0() - Duration::minutes(30), Duration::hours(2)).await.unwrap().unwrap();
    s.enqueue(&job(lane(&a, "due"), None), t0()).await.unwrap();
    s.enqueue(&job(lane(&a, "later"), Some(t0() + Duration::hours(1))), t0()).await.unwrap();
    s.enqueue(&job(lane(&b, "due"), Some(t0() - Duration::hours(2))), t0()).await.unwrap();
    assert_eq!(
        s.tenant_queue_stats(a.id, t0()).await.unwrap(),
        QueueStats { queued: 2, running: 1, dead: 1, oldest_due: Some(t0()) }
    );
    assert_eq!(
        s.tenant_queue_stats(b.id, t0()).await.unwrap(),
        QueueStats { queued: 1, running: 0, dead: 0, oldest_due: Some(t0() - Duration::hours(2)) }
    );
    let c = tenant(s, "northwind").await;
    assert_eq!(s.tenant_queue_stats(c.id, t0()).await.unwrap(), QueueStats::default());
    // Bookings changed since an instant (inclusive).
    let r = room(s, &a, "room-1@contoso.com", "loc-1").await;
    let first = s.insert_booking(&record(a.id, r, t0(), "anna@contoso.com"), &[], &[], t0()).await.unwrap();
    s.insert_booking(&record(a.id, r, t0() + Duration::hours(1), "anna@contoso.com"), &[], &[], t0())
        .await
        .unwrap();
    s.update_booking(&first, &[], &[], t0() + Duration::hours(2)).await.unwrap();
    assert_eq!(s.count_bookings_updated_since(a.id, t0()).await.unwrap(), 2);
    assert_eq!(s.count_bookings_updated_since(a.id, t0() + Duration::hours(1)).await.unwrap(), 1);
    assert_eq!(s.count_bookings_updated_since(a.id, t0() + Duration::hours(2)).await.unwrap(), 1);
    assert_eq!(s.count_bookings_updated_since(a.id, t0() + Duration::hours(3)).await.unwrap(), 0);
    assert_eq!(s.count_bookings_updated_since(b.id, t0()).await.unwrap(), 0);
}

// ---- bookings list ----

async fn room(s: &dyn Store, t: &Tenant, mailbox: &str, location: &str) -> RoomId {
    let new = NewRoom {
        mailbox: RoomMailbox::parse(mailbox).unwrap(),
        topdesk_location_id: TopdeskLocationId::parse(location).unwrap(),
        display_name: None,
    };
    s.add_room(t.id, &new, t0()).await.unwrap().id
}

fn record(tenant: TenantId, room: RoomId, start: DateTime<Utc>, organizer: &str) -> BookingRecord {
    BookingRecord::new(
        NewBooking {
            tenant_id: tenant,
            appointment_type: AppointmentType::Single,
            series_id: None,
            original_start: None,
            organizer: email(organizer),
            booked_by: None,
            location_text: None,
            room_id: room,
            participants: vec![],
            subject: None,
            start,
            end: start + Duration::hours(1),
            time_zone: TimeZoneName::parse("Europe/Amsterdam").unwrap(),
            processor_created: Side::Exchange,
        },
        t0(),
    )
}

async fn bookings_filter_by_organizer_and_failure_and_page(h: &Harness) {
    let s = &*h.store;
    let a = tenant(s, "contoso").await;
    let r = room(s, &a, "room-1@contoso.com", "loc-1").await;
    let at = |h: i64| t0() + Duration::hours(h);
    let ok = record(a.id, r, at(0), "anna@contoso.com");
    let mut counted = record(a.id, r, at(1), "bob@contoso.com");
    counted.failed_count = 1;
    let mut exchange_failed = record(a.id, r, at(2), "anna@contoso.com");
    exchange_failed.exchange_status = SyncStatus::Failed;
    let mut topdesk_failed = record(a.id, r, at(3), "bob@contoso.com");
    topdesk_failed.topdesk_status = SyncStatus::Failed;
    let mut declined = record(a.id, r, at(4), "anna@contoso.com");
    declined.topdesk_status = SyncStatus::Declined;
    let mut cancelled_failed = record(a.id, r, at(5), "anna@contoso.com");
    cancelled_failed.cancelled = true;
    cancelled_failed.failed_count = 2;
    let all = [&ok, &counted, &exchange_failed, &topdesk_failed, &declined, &cancelled_failed];
    for rec in all {
        s.insert_booking(rec, &[], &[], t0()).await.unwrap();
    }
    let check = |filter: BookingFilter, expected: Vec<&BookingRecord>| {
        let store = h.store.clone();
        let expected: Vec<_> = expected.into_iter().map(|r| r.id).collect();
        async move {
            let got: Vec<_> =
                store.list_bookings(a.id, &filter).await.unwrap().into_iter().map(|r| r.id).collect();
            assert_eq!(got, expected, "{filter:?}");
        }
    };
    let every = || BookingFilter { include_cancelled: true, ..BookingFilter::default() };
    check(every(), all.to_vec()).await;
    check(
        BookingFilter { organizer: Some(email("Anna@Contoso.com")), ..every() },
        vec![&ok, &exchange_failed, &declined, &cancelled_failed],
    )
    .await;
    check(BookingFilter { organizer: Some(email("nobody@contoso.com")), ..every() }, vec![]).await;
    check(
        BookingFilter { failed_only: true, ..every() },
        vec![&counted, &exchange_failed, &topdesk_failed, &cancelled_failed],
    )
    .await;
    check(
        BookingFilter { failed_only: true, ..BookingFilter::default() },
        vec![&counted, &exchange_failed, &topdesk_failed],
    )
    .await;
    check(
        BookingFilter { failed_only: true, organizer: Some(email("bob@contoso.com")), ..every() },
        vec![&counted, &topdesk_failed],
    )
    .await;
    // Pages in the list's order (start time).
    check(BookingFilter { limit: Some(2), ..every() }, vec![&ok, &counted]).await;
    check(BookingFilter { limit: Some(2), offset: 2, ..every() }, vec![&exchange_failed, &topdesk_failed])
        .await;
    check(BookingFilter { limit: Some(2), offset: 4, ..every() }, vec![&declined, &cancelled_failed]).await;
    check(BookingFilter { limit: Some(2), offset: 6, ..every() }, vec![]).await;
    check(BookingFilter { offset: 3, ..every() }, vec![&topdesk_failed, &declined, &cancelled_failed]).await;
    check(BookingFilter { limit: Some(0), ..every() }, vec![]).await;
    check(
        BookingFilter { limit: Some(1), offset: 1, failed_only: true, from: Some(at(2)), ..every() },
        vec![&topdesk_failed],
    )
    .await;
    // Another tenant sees none of them, whatever the filter.
    let b = tenant(s, "fabrikam").await;
    assert!(
        s.list_bookings(
            b.id,
            &BookingFilter { failed_only: true, organizer: Some(email("anna@contoso.com")), ..every() }
        )
        .await
        .unwrap()
        .is_empty()
    );
}
