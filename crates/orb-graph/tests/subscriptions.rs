//! Subscriptions and change notifications: ORB's client and intake checks against the Graph emulator, over
//! real HTTP on port 0, with a stand-in webhook receiver.

mod support;

use std::sync::Arc;

use chrono::Duration;
use orb_core::Clock as _;
use orb_crypto::secrecy::SecretString;
use orb_crypto::{
    CertificateRing, EncryptionCertificate, NotificationPrivateKey, ValidationTokenClaims,
    ValidationTokenExpectations, ValidationTokenSigner,
};
use orb_emulators::graph::{DeliveryKind, Knobs, NotificationKnobs};
use orb_graph::model::{ChangeNotificationCollection, ChangeType, LifecycleEventType};
use orb_graph::notifications::{
    Refusal, check_validation_tokens, decrypt_event, decrypt_resource, parse_notification_collection,
    screen_notifications,
};
use orb_graph::{
    GraphClient, GraphError, JwksCache, JwksCacheOptions, RICH_EVENT_SELECT, RichNotifications,
    SubscriptionRequest, events_resource, generate_client_state, subscription_expiry,
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use support::{CLIENT_ID, Handshake, Receiver, TENANT, World, addr, at, corr};

const ROOM: &str = "room1@contoso.com";

fn request(
    world: &World,
    rx: &Receiver,
    rich: Option<RichNotifications>,
    state: &SecretString,
) -> SubscriptionRequest {
    let room = addr(ROOM);
    let select = rich.as_ref().map(|_| RICH_EVENT_SELECT);
    SubscriptionRequest {
        resource: events_resource(&room, select),
        change_types: vec![ChangeType::Created, ChangeType::Updated, ChangeType::Deleted],
        notification_url: rx.notify_url(),
        lifecycle_notification_url: Some(rx.lifecycle_url()),
        client_state: state.clone(),
        expiration: subscription_expiry(
            world.clock.now(),
            Duration::days(7),
            rich.is_some(),
            Duration::minutes(30),
        ),
        rich,
    }
}

fn ring(world: &World) -> CertificateRing {
    let now = world.clock.now();
    let key = NotificationPrivateKey::generate().unwrap();
    let cert =
        EncryptionCertificate::generate(key, now - Duration::hours(1), now + Duration::days(30)).unwrap();
    CertificateRing::from_entries([cert]).unwrap()
}

fn jwks_cache(world: &World) -> JwksCache {
    JwksCache::new(
        reqwest::Client::new(),
        url::Url::parse(&world.served.jwks_url()).unwrap(),
        Arc::new(world.clock.clone()),
        JwksCacheOptions::default(),
    )
}

/// A person books `room` through the control API (as in Outlook).
async fn book(world: &World, subject: &str, start: &str, end: &str) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{}/_emulator/book", world.served.base_url))
        .json(&json!({"organizer": "anna@contoso.com", "room": ROOM, "subject": subject, "start": start, "end": end}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    resp.json().await.unwrap()
}

async fn control(world: &World, path: &str, body: Value) -> u16 {
    let resp = reqwest::Client::new()
        .post(format!("{}/_emulator/{path}", world.served.base_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    resp.status().as_u16()
}

#[tokio::test]
async fn the_handshake_decides_whether_a_subscription_is_created() {
    let world = World::start().await;
    let client = world.client();
    let rx = Receiver::start().await;
    world.em.set_knobs(Knobs { handshake_timeout_ms: 300, ..Knobs::default() });
    let state = generate_client_state().unwrap();

    async fn check(
        client: &GraphClient,
        world: &World,
        rx: &Receiver,
        state: &SecretString,
        mode: Handshake,
        refusal: Option<&str>,
    ) {
        rx.set(mode);
        let before = world.em.subscriptions().len();
        match (client.create_subscription(&request(world, rx, None, state), corr()).await, refusal) {
            (Ok(sub), None) => {
                assert!(sub.id.is_some(), "{mode:?}");
                assert_eq!(sub.client_state, None, "the secret is not handed back");
                assert_eq!(world.em.subscriptions().len(), before + 1, "{mode:?}");
            }
            (Err(e @ GraphError::EndpointValidation { .. }), Some(says)) => {
                assert!(e.to_string().contains(says), "{mode:?}: {e}");
                assert!(e.to_string().contains(rx.notify_url().as_str()), "{e}");
                assert!(!e.is_retryable());
                assert_eq!(world.em.subscriptions().len(), before, "{mode:?}: nothing created");
            }
            (other, want) => panic!("{mode:?}: got {other:?}, wanted {want:?}"),
        }
    }
    check(&client, &world, &rx, &state, Handshake::Echo, None).await;
    check(&client, &world, &rx, &state, Handshake::WrongBody, Some("exactly match")).await;
    check(&client, &world, &rx, &state, Handshake::EchoEncoded, Some("exactly match")).await;
    check(&client, &world, &rx, &state, Handshake::Fail, Some("200 OK")).await;
    check(&client, &world, &rx, &state, Handshake::Slow(2_000), Some("timed out")).await;

    // Both URLs were validated for the subscription that was created.
    let handshakes: Vec<_> =
        world.em.deliveries().into_iter().filter(|d| d.kind == DeliveryKind::Validation).collect();
    assert!(handshakes[0].url.contains("/notify") && handshakes[0].outcome == "delivered", "{handshakes:?}");
    assert!(
        handshakes[1].url.contains("/lifecycle") && handshakes[1].outcome == "delivered",
        "{handshakes:?}"
    );
}

#[tokio::test]
async fn lifetimes_follow_the_events_limits() {
    let world = World::start().await;
    let client = world.client();
    let rx = Receiver::start().await;
    let ring = ring(&world);
    let now = world.clock.now();
    let state = generate_client_state().unwrap();
    let rich = || Some(RichNotifications::for_certificate(ring.current().unwrap()));
    let check = |asked: Duration, is_rich: bool, expect: Option<Duration>| {
        let mut req = request(&world, &rx, if is_rich { rich() } else { None }, &state);
        req.expiration = now + asked;
        let client = &client;
        async move {
            let got = client.create_subscription(&req, corr()).await;
            match (got, expect) {
                (Ok(sub), Some(lifetime)) => {
                    assert_eq!(sub.expiration_date_time, Some(now + lifetime), "{asked}")
                }
                (Err(GraphError::Rejected { reason, .. }), None) => {
                    assert!(reason.contains("minutes in the future"), "{reason}")
                }
                (other, want) => panic!("{asked} rich={is_rich}: {other:?}, wanted {want:?}"),
            }
        }
    };
    check(Duration::minutes(10_080), false, Some(Duration::minutes(10_080))).await;
    check(Duration::minutes(10_081), false, None).await;
    check(Duration::minutes(1_440), true, Some(Duration::minutes(1_440))).await;
    check(Duration::minutes(1_441), true, None).await;
    check(Duration::minutes(5), false, Some(Duration::minutes(45))).await;
}

#[tokio::test]
async fn a_booking_arrives_as_a_rich_notification_that_validates_and_decrypts() {
    let world = World::start().await;
    let client = world.client();
    let rx = Receiver::start().await;
    let ring = ring(&world);
    let state = generate_client_state().unwrap();
    let rich = RichNotifications::for_certificate(ring.current().unwrap());
    let sub = client.create_subscription(&request(&world, &rx, Some(rich), &state), corr()).await.unwrap();
    let sub_id = sub.id.clone().unwrap();
    assert_eq!(sub.include_resource_data, Some(true));

    book(&world, "Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
    let posts = rx.wait_for("/notify", 1).await;
    let raw = posts[0].body.clone();
    let collection = parse_notification_collection(&raw).unwrap();
    assert_eq!(collection.value.len(), 1);
    let item = &collection.value[0];
    assert_eq!(item.subscription_id.as_deref(), Some(sub_id.as_str()));
    assert_eq!(item.change_type, Some(ChangeType::Created));
    assert_eq!(item.tenant_id.as_deref(), Some(TENANT));
    assert!(item.resource.as_deref().unwrap().starts_with("Users/"), "{item:?}");

    // Intake: the clientState matches (constant time).
    let known = |id: &str| (id == sub_id).then(|| state.clone());
    assert_eq!(screen_notifications(&collection, known)[0].verdict, Ok(()));

    // Worker: the validationTokens validate against the emulator's JWKS, fetched over HTTP.
    let expected = ValidationTokenExpectations::new(CLIENT_ID, TENANT);
    let cache = jwks_cache(&world);
    let tokens = cache.check_validation_tokens(&collection, &expected).await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].tenant_id, TENANT);
    assert_eq!(tokens[0].app_id, CLIENT_ID);
    assert_eq!(cache.fetch_count(), 1);

    // And the content decrypts to the room's copy of the meeting.
    let event = decrypt_event(item, &ring).unwrap().expect("rich content");
    let room_copy = world.em.events(ROOM).unwrap().pop().unwrap();
    assert_eq!(event.ical_uid, room_copy.ical_uid);
    assert_eq!(event.subject, room_copy.subject, "the room's subject (DeleteSubject applies)");
    assert_eq!(event.start.as_ref().unwrap().date_time, "2026-09-03T09:00:00.0000000");
    assert_eq!(item.resource_data.as_ref().and_then(|r| r.id.clone()), event.id);
    let json = decrypt_resource(item, &ring).unwrap().unwrap();
    assert!(json.get("body").is_none() && json.get("bodyPreview").is_none(), "only $select'ed: {json}");

    // Tampering is refused at the step that guards against it.
    let mut wrong_state = collection.clone();
    wrong_state.value[0].client_state = Some(format!("{}x", state.expose_secret()));
    assert_eq!(screen_notifications(&wrong_state, known)[0].verdict, Err(Refusal::ClientStateMismatch));

    let now = world.clock.now();
    let jwks = cache.current().await.unwrap();
    let check =
        |name: &str, tampered: ChangeNotificationCollection, expected: &ValidationTokenExpectations| {
            match check_validation_tokens(&tampered, &jwks, expected, now) {
                Err(e @ GraphError::NotificationRefused { .. }) => assert!(!e.is_retryable(), "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        };
    let mut bad_signature = collection.clone();
    let token = &mut bad_signature.validation_tokens.as_mut().unwrap()[0];
    let last = token.pop().unwrap();
    token.push(if last == 'A' { 'B' } else { 'A' });
    check("bad signature", bad_signature, &expected);
    let mut no_tokens = collection.clone();
    no_tokens.validation_tokens = None;
    check("tokens removed", no_tokens, &expected);
    check("another app's token", collection.clone(), &ValidationTokenExpectations::new("other-app", TENANT));
    let mut other_tenant = collection.clone();
    other_tenant.value[0].tenant_id = Some("11111111-2222-3333-4444-555555555555".to_owned());
    check("tenant not covered", other_tenant, &expected);

    let mut bad_data = item.clone();
    let content = bad_data.encrypted_content.as_mut().unwrap();
    content.data = content.data.chars().rev().collect();
    assert!(matches!(decrypt_event(&bad_data, &ring), Err(GraphError::NotificationRefused { .. })));
    assert!(matches!(
        decrypt_event(item, &CertificateRing::new()),
        Err(GraphError::NotificationRefused { .. })
    ));
}

#[tokio::test]
async fn an_unknown_signing_key_refetches_the_jwks_once_and_rate_limited() {
    let world = World::start().await;
    let client = world.client();
    let rx = Receiver::start().await;
    let ring = ring(&world);
    let state = generate_client_state().unwrap();
    let rich = RichNotifications::for_certificate(ring.current().unwrap());
    client.create_subscription(&request(&world, &rx, Some(rich), &state), corr()).await.unwrap();
    let expected = ValidationTokenExpectations::new(CLIENT_ID, TENANT);
    let cache = jwks_cache(&world);
    cache.current().await.unwrap();
    assert_eq!(cache.fetch_count(), 1);

    // The emulator rotates its signing key; ten minutes later a notification is signed with the new one.
    world.em.rotate_signing_key().unwrap();
    world.clock.advance(Duration::minutes(10));
    book(&world, "After rotation", "2026-09-04T09:00:00", "2026-09-04T10:00:00").await;
    let first = parse_notification_collection(&rx.wait_for("/notify", 1).await[0].body).unwrap();
    let valid = cache.check_validation_tokens(&first, &expected).await.unwrap();
    assert_eq!(valid[0].kid, "emulator-key-2");
    assert_eq!(cache.fetch_count(), 2, "refetched once for the new kid");

    // A forged kid right after: no second refetch within the interval, and the POST is refused.
    let forger = ValidationTokenSigner::generate("forged-kid").unwrap();
    let mut forged = first.clone();
    forged.validation_tokens = Some(vec![
        forger.issue(&ValidationTokenClaims::graph(CLIENT_ID, TENANT, world.clock.now())).unwrap(),
    ]);
    let err = cache.check_validation_tokens(&forged, &expected).await.unwrap_err();
    assert!(matches!(err, GraphError::NotificationRefused { .. }), "{err:?}");
    assert!(err.to_string().contains("forged-kid"), "{err}");
    assert_eq!(cache.fetch_count(), 2, "rate-limited");
}

#[tokio::test]
async fn renew_reauthorize_get_list_and_delete() {
    let world = World::start().await;
    let client = world.client();
    let rx = Receiver::start().await;
    let state = generate_client_state().unwrap();
    let sub = client.create_subscription(&request(&world, &rx, None, &state), corr()).await.unwrap();
    let id = sub.id.clone().unwrap();
    let first_expiry = sub.expiration_date_time.unwrap();

    world.clock.advance(Duration::days(2));
    let later = subscription_expiry(world.clock.now(), Duration::days(7), false, Duration::minutes(30));
    let renewed = client.renew_subscription(&id, later, None, corr()).await.unwrap();
    assert_eq!(renewed.expiration_date_time, Some(later));
    assert!(later > first_expiry);
    assert_eq!(client.get_subscription(&id, corr()).await.unwrap().expiration_date_time, Some(later));
    let too_far = world.clock.now() + Duration::days(8);
    assert!(matches!(
        client.renew_subscription(&id, too_far, None, corr()).await,
        Err(GraphError::Rejected { .. })
    ));

    assert!(world.em.send_lifecycle(&id, LifecycleEventType::ReauthorizationRequired));
    assert!(world.em.subscriptions()[0].reauthorization_required);
    client.reauthorize_subscription(&id, corr()).await.unwrap();
    assert!(!world.em.subscriptions()[0].reauthorization_required);
    assert_eq!(
        client.get_subscription(&id, corr()).await.unwrap().expiration_date_time,
        Some(later),
        "unchanged"
    );

    let listed = client.list_subscriptions(corr()).await.unwrap();
    assert_eq!(listed.iter().map(|s| s.id.clone().unwrap()).collect::<Vec<_>>(), vec![id.clone()]);
    assert!(listed[0].client_state.is_none());

    client.delete_subscription(&id, corr()).await.unwrap();
    assert!(matches!(client.get_subscription(&id, corr()).await, Err(GraphError::NotFound { .. })));
    assert!(matches!(
        client.renew_subscription(&id, later, None, corr()).await,
        Err(GraphError::NotFound { .. })
    ));
    assert!(matches!(client.reauthorize_subscription(&id, corr()).await, Err(GraphError::NotFound { .. })));
    client.delete_subscription(&id, corr()).await.expect("deleting twice is fine");
    assert!(client.list_subscriptions(corr()).await.unwrap().is_empty());
}

#[tokio::test]
async fn each_lifecycle_event_arrives_at_the_lifecycle_url() {
    let world = World::start().await;
    let client = world.client();
    let rx = Receiver::start().await;
    let state = generate_client_state().unwrap();
    let known = |id: &str| Some(state.clone()).filter(|_| !id.is_empty());

    let events = [
        ("reauthorizationRequired", LifecycleEventType::ReauthorizationRequired, true),
        ("missed", LifecycleEventType::Missed, true),
        ("subscriptionRemoved", LifecycleEventType::SubscriptionRemoved, false),
    ];
    for (n, (name, event, still_there)) in events.into_iter().enumerate() {
        let id = client
            .create_subscription(&request(&world, &rx, None, &state), corr())
            .await
            .unwrap()
            .id
            .unwrap();
        assert_eq!(
            control(&world, &format!("subscriptions/{id}/lifecycle"), json!({"event": name})).await,
            202
        );
        let got = rx.wait_for("/lifecycle", n + 1).await;
        let collection = parse_notification_collection(&got[n].body).unwrap();
        let item = &collection.value[0];
        assert_eq!(item.lifecycle_event, Some(event), "{name}");
        assert_eq!(item.subscription_id.as_deref(), Some(id.as_str()));
        assert_eq!(item.resource, None, "lifecycle items carry no resource");
        assert_eq!(screen_notifications(&collection, known)[0].verdict, Ok(()), "{name}");
        assert_eq!(client.get_subscription(&id, corr()).await.is_ok(), still_there, "{name}");
    }
    assert_eq!(control(&world, "subscriptions/nope/lifecycle", json!({"event": "missed"})).await, 404);

    // Naturally: close to expiry Graph asks for reauthorization; past it, the subscription is gone.
    let mut req = request(&world, &rx, None, &state);
    req.expiration = world.clock.now() + Duration::hours(2);
    let id = client.create_subscription(&req, corr()).await.unwrap().id.unwrap();
    world.clock.advance(Duration::minutes(106));
    assert_eq!(control(&world, "tick", json!({})).await, 204);
    let got = rx.wait_for("/lifecycle", 4).await;
    let item = parse_notification_collection(&got[3].body).unwrap().value.remove(0);
    assert_eq!(
        (item.lifecycle_event, item.subscription_id),
        (Some(LifecycleEventType::ReauthorizationRequired), Some(id.clone()))
    );
    world.clock.advance(Duration::minutes(15));
    assert!(matches!(client.get_subscription(&id, corr()).await, Err(GraphError::NotFound { .. })));
}

#[tokio::test]
async fn basic_notifications_and_the_drop_duplicate_reorder_knobs() {
    let world = World::start().await;
    let client = world.client();
    let rx = Receiver::start().await;
    let state = generate_client_state().unwrap();
    client.create_subscription(&request(&world, &rx, None, &state), corr()).await.unwrap();
    let ids = |posts: &[support::Received]| -> Vec<(String, String)> {
        posts
            .iter()
            .map(|p| {
                let c: ChangeNotificationCollection = serde_json::from_slice(&p.body).unwrap();
                let item = &c.value[0];
                assert!(item.encrypted_content.is_none() && c.validation_tokens.is_none(), "basic");
                (
                    item.change_type.unwrap().as_str().to_owned(),
                    item.resource_data.clone().unwrap().id.unwrap(),
                )
            })
            .collect()
    };

    // Plain delivery: created, then updated; the item can be fetched by its resourceData id.
    let organizer = book(&world, "One", "2026-09-05T09:00:00", "2026-09-05T10:00:00").await;
    let posts = rx.wait_for("/notify", 1).await;
    let (change, room_item) = ids(&posts)[0].clone();
    assert_eq!(change, "created");
    let room = addr(ROOM);
    let fetched = client.get_event(&room, &room_item, corr()).await.unwrap();
    assert_eq!(fetched.ical_uid.as_deref(), organizer["iCalUId"].as_str());

    // Drop: the next notification never arrives (the log says so), the one after does.
    world.em.set_knobs(Knobs {
        notifications: NotificationKnobs { drop_next: 1, ..Default::default() },
        ..Knobs::default()
    });
    let second = book(&world, "Two", "2026-09-06T09:00:00", "2026-09-06T10:00:00").await;
    let third = book(&world, "Three", "2026-09-07T09:00:00", "2026-09-07T10:00:00").await;
    let posts = rx.wait_for("/notify", 2).await;
    assert_eq!(posts.len(), 2);
    // The room's copy of a booking, with the ids the client (immutable ids) sees.
    let room_view =
        || client.calendar_view(&room, at("2026-09-01T00:00:00Z"), at("2026-10-01T00:00:00Z"), corr());
    let room_id_of = |view: &[orb_graph::model::Event], organizer: &Value| {
        let copy = view.iter().find(|e| e.ical_uid.as_deref() == organizer["iCalUId"].as_str());
        copy.and_then(|e| e.id.clone()).expect("the room has a copy")
    };
    let view = room_view().await.unwrap();
    assert_eq!(ids(&posts)[1].1, room_id_of(&view, &third), "the second booking's notification was dropped");
    assert!(world.em.deliveries().iter().any(|d| d.outcome == "dropped" && d.kind == DeliveryKind::Change));

    // Duplicate: one change, two identical POSTs.
    world.em.set_knobs(Knobs {
        notifications: NotificationKnobs { duplicate_next: 1, ..Default::default() },
        ..Knobs::default()
    });
    let second_id = second["id"].as_str().unwrap();
    let retimed = support::meeting("Two", ROOM, "2026-09-06T11:00:00", "2026-09-06T12:00:00");
    let retimed = orb_graph::model::Event { start: retimed.start, end: retimed.end, ..Default::default() };
    world.em.update_in("anna@contoso.com", second_id, &retimed, &Default::default()).unwrap();
    let posts = rx.wait_for("/notify", 4).await;
    assert_eq!(posts[2].body, posts[3].body);
    assert_eq!(ids(&posts)[2], ("updated".to_owned(), room_id_of(&view, &second)));

    // Reorder: two changes arrive swapped.
    world.em.set_knobs(Knobs {
        notifications: NotificationKnobs { reorder_next: 1, ..Default::default() },
        ..Knobs::default()
    });
    let fourth = book(&world, "Four", "2026-09-08T09:00:00", "2026-09-08T10:00:00").await;
    client.delete_event(&room, &room_id_of(&view, &third), None, corr()).await.unwrap();
    let posts = rx.wait_for("/notify", 6).await;
    let got = ids(&posts);
    assert_eq!(got[4].0, "deleted", "{got:?}");
    let view = room_view().await.unwrap();
    assert_eq!(got[5], ("created".to_owned(), room_id_of(&view, &fourth)), "{got:?}");
    assert_eq!(posts.len(), 6);

    // Hold: nothing leaves while the knob is set; clearing it sends what was held, in order.
    world.em.set_knobs(Knobs {
        notifications: NotificationKnobs { hold: true, ..Default::default() },
        ..Knobs::default()
    });
    let logged = world.em.deliveries().len();
    let fifth = book(&world, "Five", "2026-09-09T09:00:00", "2026-09-09T10:00:00").await;
    let sixth = book(&world, "Six", "2026-09-10T09:00:00", "2026-09-10T10:00:00").await;
    assert_eq!(world.em.deliveries().len(), logged, "held: nothing was sent");
    world.em.set_knobs(Knobs::default());
    let posts = rx.wait_for("/notify", 8).await;
    let got = ids(&posts);
    let view = room_view().await.unwrap();
    let created = |organizer: &Value| ("created".to_owned(), room_id_of(&view, organizer));
    assert_eq!(got[6..], [created(&fifth), created(&sixth)], "released in order: {got:?}");
}
