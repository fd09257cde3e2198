//! Encryption certificates at rest (`orb_engine::keys`): made when due, kept while used, destroyed when
//! unused, sealed under the master key, resealed on master-key rotation — on SQLite and PostgreSQL.

mod support;

use chrono::{DateTime, Duration, Utc};
use orb_core::{RoomMailbox, TenantName, TopdeskLocationId};
use orb_crypto::secrecy::ExposeSecret as _;
use orb_crypto::{KeyRing, MasterKey, RotationPolicy, encrypt_notification_content};
use orb_engine::keys::{KeysError, load_ring, reseal_all, rotate_certificates};
use orb_store::{NewRoom, Store, SubscriptionRow};
use support::TestStore;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-09-01T06:00:00Z").unwrap().with_timezone(&Utc)
}

async fn stores() -> Vec<TestStore> {
    TestStore::every().await
}

fn policy() -> RotationPolicy {
    RotationPolicy::new(Duration::days(90), Duration::days(60), Duration::hours(6)).unwrap()
}

/// A subscription of a fresh tenant's room that names `certificate`.
async fn subscription_naming(store: &dyn Store, certificate: &str) {
    let tenant = store.create_tenant(&TenantName::parse("contoso").unwrap(), t0()).await.unwrap();
    let room = store
        .add_room(
            tenant.id,
            &NewRoom {
                mailbox: RoomMailbox::parse("room1@contoso.com").unwrap(),
                topdesk_location_id: TopdeskLocationId::parse("loc-1").unwrap(),
                display_name: None,
            },
            t0(),
        )
        .await
        .unwrap();
    store
        .upsert_subscription(&SubscriptionRow {
            id: "sub-1".into(),
            tenant_id: tenant.id,
            room_id: room.id,
            resource: "users/room1@contoso.com/events".into(),
            client_state_hash: vec![0; 32],
            rich: true,
            encryption_certificate_id: Some(certificate.to_owned()),
            expires_at: t0() + Duration::days(1),
            created_at: t0(),
            updated_at: t0(),
            watermark: None,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_certificate_is_made_when_due_kept_while_used_and_destroyed_when_not() {
    for sut in stores().await {
        let store = &*sut.store;
        let master = KeyRing::new(MasterKey::generate().unwrap());

        let (ring, report) = rotate_certificates(store, &master, &policy(), t0()).await.unwrap();
        let first = report.created.clone().expect("an empty store gets a first certificate");
        assert_eq!((ring.len(), report.retired.len()), (1, 0), "{}", sut.name);
        let (_, again) =
            rotate_certificates(store, &master, &policy(), t0() + Duration::days(1)).await.unwrap();
        assert_eq!(again.created, None, "{}: nothing due a day later", sut.name);

        // What Graph encrypts for the stored certificate opens with the ring loaded from the store.
        let loaded = load_ring(store, &master).await.unwrap();
        let current = loaded.current().unwrap();
        assert_eq!(current.id(), first);
        let content =
            encrypt_notification_content(br#"{"id":"AAMk1"}"#, current.certificate(), current.id()).unwrap();
        assert_eq!(loaded.decrypt(&content).unwrap(), br#"{"id":"AAMk1"}"#);

        // The private key is not in the store in the clear.
        let rows = store.list_encryption_keys().await.unwrap();
        let pkcs8 = current.private_key_pkcs8().unwrap();
        let clear = pkcs8.expose_secret();
        assert!(!rows[0].sealed_private_key.windows(clear.len()).any(|w| w == clear), "{}", sut.name);

        // 60 days on: a new certificate; the old one stays while a subscription names it…
        subscription_naming(store, &first).await;
        let later = t0() + Duration::days(60);
        let (ring, report) = rotate_certificates(store, &master, &policy(), later).await.unwrap();
        let second = report.created.clone().expect("rotation due after 60 days");
        assert_ne!(second, first);
        assert_eq!(ring.current().unwrap().id(), second);
        assert_eq!((ring.len(), report.retired.len()), (2, 0), "{}", sut.name);
        let (_, report) =
            rotate_certificates(store, &master, &policy(), later + Duration::days(1)).await.unwrap();
        assert!(report.retired.is_empty(), "{}: still named by a subscription", sut.name);
        // … and is destroyed once none does (past the grace period).
        let tenant = store.tenant_by_name(&TenantName::parse("contoso").unwrap()).await.unwrap();
        store.delete_subscription(tenant.id, "sub-1").await.unwrap();
        let (ring, report) =
            rotate_certificates(store, &master, &policy(), later + Duration::days(1)).await.unwrap();
        assert_eq!(report.retired, vec![first.clone()], "{}", sut.name);
        assert_eq!(ring.len(), 1);
        let ids: Vec<String> =
            store.list_encryption_keys().await.unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![second], "{}", sut.name);
    }
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_by_name_and_rotation_reseals_every_key() {
    for sut in stores().await {
        let store = &*sut.store;
        let old = MasterKey::generate().unwrap();
        let (_, report) =
            rotate_certificates(store, &KeyRing::new(old.clone()), &policy(), t0()).await.unwrap();
        let id = report.created.unwrap();

        let stranger = KeyRing::new(MasterKey::generate().unwrap());
        match load_ring(store, &stranger).await {
            Err(e @ KeysError::Stored { .. }) => {
                assert!(e.to_string().contains(&id) && e.to_string().contains("orb keys check"), "{e}");
                assert!(!e.is_retryable());
            }
            other => panic!("{}: expected a refusal, got {other:?}", sut.name),
        }
        // Rotation needs a rotation first too: a wrong key never creates a second certificate.
        assert!(rotate_certificates(store, &stranger, &policy(), t0()).await.is_err());
        assert_eq!(store.list_encryption_keys().await.unwrap().len(), 1);

        let new = MasterKey::generate().unwrap();
        let ring = KeyRing::new(new.clone()).with_previous([old.clone()]).unwrap();
        assert_eq!(reseal_all(store, &ring, t0()).await.unwrap(), 1, "{}", sut.name);
        assert_eq!(reseal_all(store, &ring, t0()).await.unwrap(), 0, "{}: already resealed", sut.name);
        let rows = store.list_encryption_keys().await.unwrap();
        assert_eq!(rows[0].key_id, new.id());
        assert_eq!(load_ring(store, &KeyRing::new(new)).await.unwrap().current().unwrap().id(), id);
        assert!(
            load_ring(store, &KeyRing::new(old)).await.is_err(),
            "{}: the old key no longer opens it",
            sut.name
        );
    }
}
