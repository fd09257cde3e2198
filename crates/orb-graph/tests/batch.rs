//! `$batch`: ORB's client against the Graph emulator over real HTTP on port 0.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use orb_emulators::graph::Knobs;
use orb_graph::model::{DateTimeTimeZone, Event};
use orb_graph::{BatchCall, GraphClient, GraphError, ORB_MATCH_PROPERTY_ID};
use reqwest::Method;
use serde_json::{Value, json};
use support::{World, addr, corr};

fn plain(subject: &str, day: u32) -> Event {
    let at = |h: u32| DateTimeTimeZone {
        date_time: format!("2026-10-{:02}T{h:02}:00:00", day % 28 + 1),
        time_zone: Some("UTC".to_owned()),
    };
    Event { subject: Some(subject.to_owned()), start: Some(at(9)), end: Some(at(10)), ..Event::default() }
}

/// Creates `n` events in `mailbox`; returns their ids in creation order.
async fn seed(client: &GraphClient, mailbox: &str, n: usize) -> Vec<String> {
    let mb = addr(mailbox);
    let mut ids = Vec::new();
    for i in 0..n {
        let (event, match_id) = (plain(&format!("E{i}"), i as u32), format!("m-{i}"));
        let created = client.create_event(&mb, &event, &match_id, corr()).await.expect("seeded");
        ids.push(created.id.expect("an id"));
    }
    ids
}

fn count(world: &World, method: &str, path_part: &str) -> usize {
    world.em.requests().iter().filter(|r| r.method == method && r.path.contains(path_part)).count()
}

#[tokio::test]
async fn forty_five_gets_go_in_three_batches_and_come_back_in_order() {
    let world = World::start().await;
    let client = world.client();
    let ids = seed(&client, "anna@contoso.com", 45).await;
    // Graph answers in any order; the emulator answers back to front here.
    world.em.set_knobs(Knobs { batch_responses_reversed: true, ..Knobs::default() });
    let before = count(&world, "GET", "/events/");

    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let events = client.get_events_batch(&addr("anna@contoso.com"), &refs, corr()).await.unwrap();

    assert_eq!(events.len(), 45);
    for (i, event) in events.iter().enumerate() {
        let event = event.as_ref().unwrap_or_else(|e| panic!("item {i}: {e}"));
        assert_eq!(event.id.as_deref(), Some(ids[i].as_str()), "item {i} in the caller's order");
        assert_eq!(event.subject.as_deref(), Some(format!("E{i}").as_str()));
        assert_eq!(event.extended_property(ORB_MATCH_PROPERTY_ID), Some(format!("m-{i}").as_str()));
    }
    assert_eq!(count(&world, "POST", "/$batch"), 3, "45 requests make 3 batches of ≤ 20");
    assert_eq!(count(&world, "GET", "/events/") - before, 45, "every item ran once, through the routes");
    let envelope = world.em.requests().into_iter().find(|r| r.path.ends_with("/$batch")).unwrap();
    assert!(envelope.client_request_id.is_some(), "the envelope carries client-request-id");
}

#[tokio::test]
async fn found_and_missing_items_map_to_what_direct_calls_give() {
    let world = World::start().await;
    let client = world.client();
    let anna = addr("anna@contoso.com");
    let ids = seed(&client, "anna@contoso.com", 3).await;
    world.em.remove_in("anna@contoso.com", &ids[2], false).unwrap();
    let calls = vec![
        BatchCall::new(Method::GET, &["users", "anna@contoso.com", "events", &ids[0]]),
        BatchCall::new(Method::GET, &["users", "anna@contoso.com", "events", &ids[2]]),
        BatchCall::new(Method::GET, &["users", "nobody@contoso.com", "events", "x"]),
        BatchCall::new(Method::GET, &["users", "anna@contoso.com", "events"])
            .query("$filter", "subject eq 'x'"),
        BatchCall::new(Method::PATCH, &["users", "anna@contoso.com", "events", &ids[1]])
            .json(&json!({"subject": "Renamed"}))
            .unwrap(),
        BatchCall::new(Method::DELETE, &["users", "anna@contoso.com", "events", &ids[0]]),
    ];
    let results = client.batch(calls, corr()).await.unwrap();
    assert_eq!(results.len(), 6);

    let first = results[0].as_ref().expect("an existing event");
    assert_eq!(first.status, 200);
    assert_eq!(first.json::<Event>("an event").unwrap().id.as_deref(), Some(ids[0].as_str()));

    let direct_missing = client.get_event(&anna, &ids[2], corr()).await.unwrap_err();
    let missing = results[1].as_ref().unwrap_err();
    assert!(matches!(missing, GraphError::NotFound { .. }), "{missing:?}");
    assert_eq!(missing.to_string(), direct_missing.to_string(), "same error as the direct call");
    assert!(matches!(&results[2], Err(GraphError::NotFound { .. })), "{:?}", results[2]);
    match &results[3] {
        Err(GraphError::Rejected { code, .. }) => assert_eq!(code, "ErrorInvalidUrlQueryFilter"),
        other => panic!("a bad filter is Rejected, got {other:?}"),
    }
    let patched = results[4].as_ref().expect("PATCH with a body");
    assert_eq!(patched.json::<Event>("an event").unwrap().subject.as_deref(), Some("Renamed"));
    assert_eq!(results[5].as_ref().expect("DELETE").status, 204);
    let left: Vec<_> = world.em.events("anna@contoso.com").unwrap();
    assert_eq!(left.len(), 1, "the DELETE inside the batch took effect");
    assert_eq!(left[0].subject.as_deref(), Some("Renamed"));
}

#[tokio::test]
async fn throttled_items_alone_are_resent_after_retry_after() {
    let world = World::start().await;
    let client = world.client();
    let ids = seed(&client, "anna@contoso.com", 10).await;
    let storm = BTreeMap::from([("anna@contoso.com".to_owned(), 3)]);
    world.em.set_knobs(Knobs { storm, retry_after_secs: 1, ..Knobs::default() });
    let (gets_before, throttled_before) =
        (count(&world, "GET", "/events/"), world.em.counters()["anna@contoso.com"].throttled);

    let started = Instant::now();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let events = client.get_events_batch(&addr("anna@contoso.com"), &refs, corr()).await.unwrap();

    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After (1 s) was waited out");
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.as_ref().expect("eventually succeeds").id.as_deref(), Some(ids[i].as_str()));
    }
    let counters = &world.em.counters()["anna@contoso.com"];
    assert_eq!(counters.throttled - throttled_before, 3, "the storm throttled three items");
    assert_eq!(count(&world, "POST", "/$batch"), 2, "one batch, then one retry batch");
    assert_eq!(count(&world, "GET", "/events/") - gets_before, 13, "10 items + only the 3 throttled again");
}

#[tokio::test]
async fn batches_and_direct_calls_together_keep_four_per_mailbox() {
    let world = World::start().await;
    let client = world.client();
    let ids = seed(&client, "anna@contoso.com", 24).await;
    // Slow sub-requests: two batches of 12 (Graph runs 4 of each in parallel) plus direct calls would put
    // 8+ requests at the mailbox at once if the client did not hold the mailbox's permits per batch.
    world.em.set_knobs(Knobs { latency_ms: 40, ..Knobs::default() });
    let anna = addr("anna@contoso.com");
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (a, b, c, d) = tokio::join!(
        client.get_events_batch(&anna, &refs[..12], corr()),
        client.get_events_batch(&anna, &refs[12..], corr()),
        client.get_event(&anna, &ids[0], corr()),
        client.get_event(&anna, &ids[1], corr()),
    );
    for result in a.unwrap().into_iter().chain(b.unwrap()) {
        result.expect("every item succeeds");
    }
    c.unwrap();
    d.unwrap();
    let counters = &world.em.counters()["anna@contoso.com"];
    assert!(counters.max_attempted <= 4, "never more than 4 at the mailbox: {counters:?}");
    assert_eq!(counters.concurrency_refusals, 0, "{counters:?}");
    assert_eq!(counters.max_in_flight, 4, "the cap was used, not undercut: {counters:?}");
}

async fn raw_batch(world: &World, client: &GraphClient, body: Value) -> (u16, Value) {
    let token = client.tokens().token(client.app()).await.unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/v1.0/$batch", world.served.base_url))
        .bearer_auth(token.secret())
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn malformed_batches_are_refused_whole() {
    let world = World::start().await;
    let client = world.client();
    let get = |id: String| json!({"id": id, "method": "GET", "url": "/users/anna@contoso.com/events"});
    let cases = [
        (json!({"requests": (0..21).map(|i| get(i.to_string())).collect::<Vec<_>>()}), "at most 20"),
        (json!({"requests": [get("a".into()), get("A".into())]}), "more than once"),
        (
            json!({"requests": [{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/me"}]}),
            "relative",
        ),
        (json!({"requests": [{"id": "1", "method": "BREW", "url": "/me"}]}), "unsupported method"),
        (
            json!({"requests": [{"id": "1", "method": "POST", "url": "/users/anna@contoso.com/events", "body": {}}]}),
            "Content-Type",
        ),
        (
            json!({"requests": [{"id": "1", "method": "GET", "url": "/me", "dependsOn": ["2"]}]}),
            "not in the batch",
        ),
        (json!({"value": 1}), "Invalid batch payload"),
    ];
    for (body, says) in cases {
        let (status, answer) = raw_batch(&world, &client, body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["code"], "BadRequest", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{message:?} should say {says:?}");
    }
    assert_eq!(count(&world, "GET", "/users/"), 0, "no sub-request of a refused batch ran");

    let unauthenticated = reqwest::Client::new()
        .post(format!("{}/v1.0/$batch", world.served.base_url))
        .json(&json!({"requests": [get("1".into())]}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 401);
}

#[tokio::test]
async fn depends_on_orders_items_and_fails_dependents_with_424() {
    let world = World::start().await;
    let client = world.client();
    let gone = seed(&client, "anna@contoso.com", 1).await.remove(0);
    world.em.remove_in("anna@contoso.com", &gone, false).unwrap();
    let missing = format!("/users/anna@contoso.com/events/{gone}");
    let event = json!({"subject": "Chained", "transactionId": "c-1",
        "start": {"dateTime": "2026-09-05T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-09-05T10:00:00", "timeZone": "UTC"}});
    let json_headers = json!({"Content-Type": "application/json"});
    let (status, answer) = raw_batch(
        &world,
        &client,
        json!({"requests": [
            // Listed first, but runs after "create": it sees the new event.
            {"id": "list", "method": "GET", "url": "/users/anna@contoso.com/events", "dependsOn": ["create"]},
            {"id": "create", "method": "POST", "url": "users/anna@contoso.com/events",
             "headers": json_headers, "body": event},
            {"id": "missing", "method": "GET", "url": missing},
            {"id": "after-missing", "method": "DELETE", "url": missing,
             "dependsOn": ["missing"]},
            {"id": "nested", "method": "POST", "url": "/$batch", "headers": json_headers, "body": {"requests": []}}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let by_id: BTreeMap<&str, &Value> =
        answer["responses"].as_array().unwrap().iter().map(|r| (r["id"].as_str().unwrap(), r)).collect();
    assert_eq!(by_id.len(), 5);
    assert_eq!(by_id["create"]["status"], 201);
    assert_eq!(by_id["list"]["status"], 200);
    let listed = by_id["list"]["body"]["value"].as_array().unwrap();
    assert!(listed.iter().any(|e| e["subject"] == "Chained"), "list ran after create: {listed:?}");
    assert_eq!(by_id["missing"]["status"], 404);
    assert_eq!(by_id["missing"]["body"]["error"]["code"], "ErrorItemNotFound");
    assert_eq!(by_id["after-missing"]["status"], 424, "a failed prerequisite fails its dependents");
    assert_eq!(count(&world, "DELETE", "/events/"), 0, "the dependent never ran");
    assert_eq!(by_id["nested"]["status"], 400, "batches do not nest");
    assert_eq!(
        by_id["create"]["headers"]["Content-Type"].as_str().map(|t| t.starts_with("application/json")),
        Some(true)
    );
}
