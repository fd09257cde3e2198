//! The webhook intake end to end: the real router served by the public listener on 127.0.0.1, real HTTP, a
//! real store (SQLite in a tempdir; PostgreSQL too when `ORB_TEST_POSTGRES_URL` is set, required when `CI`
//! is set). After each request the refusal counters are flushed and the store is inspected through the
//! Store API: inbox items (via their jobs), jobs, audit log.

use std::sync::Arc;

use aws_lc_rs::digest::{SHA256, digest};
use chrono::{DateTime, TimeZone, Utc};
use orb_core::{FixedClock, RoomMailbox, TenantName, TopdeskLocationId};
use orb_store::{
    InboxSource, JobStatus, NewAuditEntry, NewRoom, Room, SqliteStore, Store, SubscriptionRow, Tenant,
};
use orb_testkit::stores::TestStore;
use orb_web::{HooksState, ListenerLimits, NO_SUCH_HOOK, RateLimits, router, serve_public};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const MIB: usize = 1 << 20;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 9, 1, 8, 0, 0).unwrap()
}

fn sha256(s: &str) -> Vec<u8> {
    digest(&SHA256, s.as_bytes()).as_ref().to_vec()
}

/// A served intake over one store.
struct Env {
    base: String,
    store: Arc<dyn Store>,
    state: HooksState,
    http: reqwest::Client,
    stop: CancellationToken,
    _db: Option<TestStore>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(store: Arc<dyn Store>, db: Option<TestStore>) -> Env {
    serve_with(store, db, RateLimits::default()).await
}

async fn serve_with(store: Arc<dyn Store>, db: Option<TestStore>, rates: RateLimits) -> Env {
    let clock = FixedClock::new(t0());
    let state = HooksState::new(store.clone(), Arc::new(clock)).with_rate_limits(rates);
    let app = router(state.clone()).merge(orb_web::health::router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve_public(listener, app, ListenerLimits::default(), stop.clone()));
    Env { base: format!("http://{addr}"), store, state, http: reqwest::Client::new(), stop, _db: db }
}

/// The refusal summaries written for `tenant` (flushing the counters first).
async fn summaries(env: &Env, tenant: orb_core::TenantId) -> Vec<orb_store::AuditEntry> {
    env.state.flush_refusals(true).await.unwrap();
    env.store
        .list_audit(tenant, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.action == "webhook.refused")
        .collect()
}

/// A fresh SQLite store (`orb_testkit::stores`), served through a pool of its own that a test may close
/// (the database goes away under the intake); the second value keeps the database alive.
async fn sqlite_store() -> (Arc<SqliteStore>, TestStore) {
    let db = TestStore::sqlite().await;
    let store = SqliteStore::open(db.sqlite_path().expect("a SQLite test store"), 4).await.unwrap();
    (Arc::new(store), db)
}

/// `None` when no PostgreSQL is configured (allowed only outside CI).
async fn postgres_store() -> Option<(Arc<dyn Store>, TestStore)> {
    let db = TestStore::postgres().await?;
    Some((db.store.clone(), db))
}

/// One tenant with one room, one subscription and a TOPdesk push token, per case.
struct Fixture {
    tenant: Tenant,
    room: Room,
    subscription: String,
    client_state: String,
    push_token: String,
}

async fn fixture(store: &dyn Store, n: usize) -> Fixture {
    let tenant = store.create_tenant(&TenantName::parse(&format!("case-{n}")).unwrap(), t0()).await.unwrap();
    let room = NewRoom {
        mailbox: RoomMailbox::parse(&format!("room{n}@contoso.com")).unwrap(),
        topdesk_location_id: TopdeskLocationId::parse(&format!("loc-{n}")).unwrap(),
        display_name: None,
    };
    let room = store.add_room(tenant.id, &room, t0()).await.unwrap();
    let f = Fixture {
        subscription: format!("sub-{n}"),
        client_state: format!("client-state-secret-{n}"),
        push_token: format!("push-token-secret-{n}"),
        tenant,
        room,
    };
    store
        .upsert_subscription(&SubscriptionRow {
            id: f.subscription.clone(),
            tenant_id: f.tenant.id,
            room_id: f.room.id,
            resource: format!("users/{}/events", f.room.mailbox),
            client_state_hash: sha256(&f.client_state),
            rich: false,
            encryption_certificate_id: None,
            expires_at: t0() + chrono::Duration::days(3),
            created_at: t0(),
            updated_at: t0(),
            watermark: None,
        })
        .await
        .unwrap();
    let audit = NewAuditEntry {
        tenant_id: Some(f.tenant.id),
        at: t0(),
        actor: "test".into(),
        action: "push_token.set".into(),
        target: "topdesk".into(),
        ip: None,
    };
    store.set_push_token_hash(f.tenant.id, &sha256(&f.push_token), &audit).await.unwrap();
    f
}

fn notification(subscription: &str, client_state: &str) -> Value {
    json!({
        "subscriptionId": subscription,
        "subscriptionExpirationDateTime": "2026-09-03T10:00:00.0000000Z",
        "changeType": "updated",
        "resource": "Users/622eaaff/Events/AAMkAGUwNjQ4ZjIxAAA=",
        "resourceData": { "@odata.type": "#Microsoft.Graph.Event", "id": "AAMkAGUwNjQ4ZjIxAAA=" },
        "clientState": client_state,
        "tenantId": "7a1c0000-0000-0000-0000-000000000001",
        "someFutureField": {"kept": true}
    })
}

fn lifecycle(subscription: &str, client_state: &str) -> Value {
    json!({
        "subscriptionId": subscription,
        "subscriptionExpirationDateTime": "2026-09-03T10:00:00.0000000Z",
        "tenantId": "7a1c0000-0000-0000-0000-000000000001",
        "clientState": client_state,
        "lifecycleEvent": "missed"
    })
}

fn collection(items: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({ "value": items })).unwrap()
}

#[derive(Clone, Copy)]
enum Url {
    Graph,
    Lifecycle,
    Topdesk,
    GraphOfUnknownTenant,
}

#[derive(Clone, Copy)]
enum Auth {
    None,
    Right,
    Wrong,
}

/// What one kept item must look like.
#[derive(Clone, Copy, Debug)]
struct Kept {
    source: InboxSource,
    job: &'static str,
}

const GRAPH: Kept = Kept { source: InboxSource::Graph, job: "graph.notification" };
const LIFECYCLE: Kept = Kept { source: InboxSource::GraphLifecycle, job: "graph.lifecycle" };
const TOPDESK: Kept = Kept { source: InboxSource::Topdesk, job: "topdesk.hint" };

struct Case {
    name: &'static str,
    url: Url,
    query: &'static str,
    auth: Auth,
    body: fn(&Fixture) -> Vec<u8>,
    status: u16,
    /// Exact response body and that it is `text/plain`.
    reply: Option<&'static str>,
    kept: &'static [Kept],
    /// Refusals counted for the tenant (summed up in one audit row).
    refusals: u64,
    /// Their reason's key in the summary.
    reason: &'static str,
    /// Refusals counted for no tenant (unknown tenant).
    unattributed: u64,
}

const fn case(name: &'static str, url: Url, body: fn(&Fixture) -> Vec<u8>, status: u16) -> Case {
    Case {
        name,
        url,
        query: "",
        auth: Auth::None,
        body,
        status,
        reply: None,
        kept: &[],
        refusals: 0,
        reason: "",
        unattributed: 0,
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            query: "?validationToken=Validation%3A%20Testing%20client%20application%2B%26",
            reply: Some("Validation: Testing client application+&"),
            ..case("handshake echoes the decoded token", Url::Graph, |_| Vec::new(), 200)
        },
        Case {
            query: "?validationToken=abc%3D%3D",
            reply: Some("abc=="),
            ..case("lifecycle handshake echoes the token", Url::Lifecycle, |_| Vec::new(), 200)
        },
        Case {
            query: "?validationToken=x%3Cb%3E",
            reply: Some("x<b>"),
            ..case("handshake needs no tenant lookup", Url::GraphOfUnknownTenant, |_| Vec::new(), 200)
        },
        Case {
            kept: &[GRAPH],
            ..case(
                "a valid notification is kept",
                Url::Graph,
                |f| collection(vec![notification(&f.subscription, &f.client_state)]),
                202,
            )
        },
        Case {
            kept: &[GRAPH],
            refusals: 1,
            reason: "bad_client_state",
            ..case(
                "one good and one wrong-clientState item",
                Url::Graph,
                |f| {
                    collection(vec![
                        notification(&f.subscription, &f.client_state),
                        notification(&f.subscription, "wrong-client-state-secret"),
                    ])
                },
                202,
            )
        },
        Case {
            refusals: 1,
            reason: "bad_client_state",
            ..case(
                "an item without clientState is refused",
                Url::Graph,
                |f| {
                    let mut item = notification(&f.subscription, "");
                    item.as_object_mut().unwrap().remove("clientState");
                    collection(vec![item])
                },
                202,
            )
        },
        Case {
            refusals: 1,
            reason: "unknown_subscription",
            ..case(
                "an unknown subscription is refused",
                Url::Graph,
                |f| collection(vec![notification("no-such-subscription", &f.client_state)]),
                202,
            )
        },
        Case {
            refusals: 1,
            reason: "body_too_large",
            ..case(
                "an oversized body is refused",
                Url::Graph,
                |f| {
                    // Valid JSON, too long only because of trailing whitespace.
                    let mut body = collection(vec![notification(&f.subscription, &f.client_state)]);
                    body.resize(MIB + 1, b' ');
                    body
                },
                413,
            )
        },
        Case {
            kept: &[GRAPH],
            ..case(
                "a body of exactly the limit is kept",
                Url::Graph,
                |f| {
                    let mut body = collection(vec![notification(&f.subscription, &f.client_state)]);
                    body.resize(MIB, b' ');
                    body
                },
                202,
            )
        },
        Case {
            refusals: 1,
            reason: "malformed_body",
            ..case("malformed JSON is refused", Url::Graph, |_| b"{\"value\": [".to_vec(), 400)
        },
        Case {
            refusals: 1,
            reason: "malformed_body",
            ..case("JSON of the wrong shape is refused", Url::Graph, |_| b"{\"values\": []}".to_vec(), 400)
        },
        Case {
            reply: Some(NO_SUCH_HOOK),
            unattributed: 1,
            ..case(
                "an unknown tenant is 404",
                Url::GraphOfUnknownTenant,
                |f| collection(vec![notification(&f.subscription, &f.client_state)]),
                404,
            )
        },
        Case {
            kept: &[LIFECYCLE],
            ..case(
                "the lifecycle endpoint keeps a lifecycle item",
                Url::Lifecycle,
                |f| collection(vec![lifecycle(&f.subscription, &f.client_state)]),
                202,
            )
        },
        Case {
            refusals: 1,
            reason: "bad_client_state",
            ..case(
                "a lifecycle item with a wrong clientState is refused",
                Url::Lifecycle,
                |f| collection(vec![lifecycle(&f.subscription, "wrong-client-state-secret")]),
                202,
            )
        },
        Case {
            auth: Auth::Right,
            kept: &[TOPDESK],
            ..case(
                "a TOPdesk push with the right token is kept",
                Url::Topdesk,
                |_| br#"{"reservations": ["R2609 001", "7d3b1f4e-0000-4000-8000-000000000001"]}"#.to_vec(),
                202,
            )
        },
        Case {
            auth: Auth::Wrong,
            refusals: 1,
            reason: "bad_token",
            reply: Some(NO_SUCH_HOOK),
            ..case("a TOPdesk push with a wrong token is 404", Url::Topdesk, |_| hints(1), 404)
        },
        Case {
            refusals: 1,
            reason: "missing_token",
            reply: Some(NO_SUCH_HOOK),
            ..case("a TOPdesk push without a token is 404", Url::Topdesk, |_| hints(1), 404)
        },
        Case {
            auth: Auth::Right,
            refusals: 1,
            reason: "invalid_hints",
            ..case("a TOPdesk push with too many hints is 400", Url::Topdesk, |_| hints(101), 400)
        },
        Case {
            auth: Auth::Right,
            kept: &[TOPDESK],
            ..case("a TOPdesk push with 100 hints is kept", Url::Topdesk, |_| hints(100), 202)
        },
        Case {
            auth: Auth::Right,
            refusals: 1,
            reason: "invalid_hints",
            ..case(
                "a TOPdesk push with an empty hint is 400",
                Url::Topdesk,
                |_| br#"{"reservations": ["R1", " "]}"#.to_vec(),
                400,
            )
        },
        Case {
            auth: Auth::Right,
            refusals: 1,
            reason: "malformed_body",
            ..case("a malformed TOPdesk push is 400", Url::Topdesk, |_| br#"{"ids": ["R1"]}"#.to_vec(), 400)
        },
    ]
}

fn hints(n: usize) -> Vec<u8> {
    let hints: Vec<String> = (0..n).map(|i| format!("R2609 {i:03}")).collect();
    serde_json::to_vec(&json!({ "reservations": hints })).unwrap()
}

async fn check(env: &Env, n: usize, case: &Case) {
    let name = case.name;
    let f = fixture(env.store.as_ref(), n).await;
    let unattributed_before = env.state.unattributed_refusals();
    let path = match case.url {
        Url::Graph => format!("/hooks/graph/{}", f.tenant.name),
        Url::Lifecycle => format!("/hooks/graph/{}/lifecycle", f.tenant.name),
        Url::Topdesk => format!("/hooks/topdesk/{}", f.tenant.name),
        Url::GraphOfUnknownTenant => "/hooks/graph/nobody".to_owned(),
    };
    let mut request = env
        .http
        .post(format!("{}{path}{}", env.base, case.query))
        .header("content-type", "application/json")
        .body((case.body)(&f));
    match case.auth {
        Auth::None => {}
        Auth::Right => request = request.bearer_auth(&f.push_token),
        Auth::Wrong => request = request.bearer_auth("wrong-push-token-secret"),
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{name}: {e}"));
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let text = response.text().await.unwrap();
    assert_eq!(status, case.status, "{name}: status ({text})");
    if let Some(reply) = case.reply {
        assert_eq!(text, reply, "{name}: reply");
        assert!(content_type.starts_with("text/plain"), "{name}: content type {content_type}");
    }
    let secrets =
        [f.client_state.as_str(), f.push_token.as_str(), "wrong-client-state-secret", "wrong-push-token"];
    for secret in secrets {
        assert!(!text.contains(secret), "{name}: the response echoes a secret");
    }

    // What was kept: every inbox item has its job (one transaction), so the jobs list them all.
    let jobs = env.store.list_jobs(f.tenant.id, JobStatus::Queued).await.unwrap();
    let kinds: Vec<_> = jobs.iter().map(|j| j.kind.as_str()).collect();
    let want: Vec<_> = case.kept.iter().map(|k| k.job).collect();
    assert_eq!(kinds, want, "{name}: jobs");
    for (job, kept) in jobs.iter().zip(case.kept) {
        let inbox_id = job.payload["inbox_id"].as_i64().unwrap_or_else(|| panic!("{name}: no inbox id"));
        let item = env.store.get_inbox(f.tenant.id, inbox_id).await.unwrap();
        assert_eq!(item.source, kept.source, "{name}: inbox source");
        assert_eq!(item.received_at, t0(), "{name}: time comes from the injected clock");
        assert_eq!(item.remote_ip.as_deref(), Some("127.0.0.1"), "{name}: remote address");
        assert_eq!(item.processed_at, None, "{name}");
        assert!(job.correlation_id.is_some(), "{name}: correlation id");
        let stored = item.payload.to_string();
        for secret in secrets {
            assert!(!stored.contains(secret), "{name}: a secret was stored: {stored}");
        }
        if kept.source == InboxSource::Topdesk {
            assert_eq!(job.lane, "tenant", "{name}: lane");
            let want: Value = serde_json::from_slice::<Value>(&(case.body)(&f)).unwrap();
            assert_eq!(item.payload, want, "{name}: the hints are kept");
        } else {
            assert_eq!(job.lane, format!("room:{}", f.room.id), "{name}: the room's lane");
            assert_eq!(job.payload["subscription_id"], json!(f.subscription), "{name}");
            let mut want = if kept.source == InboxSource::Graph {
                notification(&f.subscription, &f.client_state)
            } else {
                lifecycle(&f.subscription, &f.client_state)
            };
            want.as_object_mut().unwrap().remove("clientState");
            assert_eq!(item.payload, want, "{name}: the item as received, without its clientState");
        }
    }

    // What was refused: counted, then summed up in one audit row per tenant and minute, without secrets.
    let audit = summaries(env, f.tenant.id).await;
    if case.refusals == 0 {
        assert!(audit.is_empty(), "{name}: audit {audit:#?}");
    } else {
        assert_eq!(audit.len(), 1, "{name}: one summary row {audit:#?}");
        let entry = &audit[0];
        assert_eq!((entry.actor.as_str(), entry.action.as_str()), ("webhook", "webhook.refused"), "{name}");
        assert_eq!(entry.ip.as_deref(), Some("127.0.0.1"), "{name}: audit ip");
        assert_eq!(entry.at, t0(), "{name}: the minute");
        let counts: Value = serde_json::from_str(&entry.target).unwrap();
        assert_eq!(counts, json!({ case.reason: case.refusals }), "{name}: counts by reason");
        for secret in secrets {
            assert!(!entry.target.contains(secret), "{name}: the audit log holds a secret");
        }
    }
    assert_eq!(
        env.state.unattributed_refusals() - unattributed_before,
        case.unattributed,
        "{name}: refusals for no known tenant"
    );
}

async fn run_table(env: &Env) {
    for (n, case) in cases().iter().enumerate() {
        check(env, n, case).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_on_sqlite() {
    let (store, dir) = sqlite_store().await;
    run_table(&serve(store, Some(dir)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_on_postgres() {
    let Some((store, db)) = postgres_store().await else { return };
    run_table(&serve(store, Some(db)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_of_one_post_are_one_summary_row() {
    let (store, dir) = sqlite_store().await;
    let env = serve(store, Some(dir)).await;
    let f = fixture(env.store.as_ref(), 0).await;
    let mut items = vec![notification(&f.subscription, &f.client_state)];
    items.extend((0..30).map(|i| notification(&format!("bogus-{i}"), "x")));
    items.extend((0..5).map(|_| notification(&f.subscription, "wrong-client-state-secret")));
    let response = env
        .http
        .post(format!("{}/hooks/graph/{}", env.base, f.tenant.name))
        .body(collection(items))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(env.store.list_jobs(f.tenant.id, JobStatus::Queued).await.unwrap().len(), 1);
    let audit = summaries(&env, f.tenant.id).await;
    assert_eq!(audit.len(), 1, "{audit:#?}");
    let counts: Value = serde_json::from_str(&audit[0].target).unwrap();
    assert_eq!(counts, json!({"bad_client_state": 5, "unknown_subscription": 30}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tenant_and_bad_credentials_get_the_same_answer() {
    let (store, dir) = sqlite_store().await;
    let env = serve(store, Some(dir)).await;
    let f = fixture(env.store.as_ref(), 0).await;
    let graph_body = collection(vec![notification(&f.subscription, &f.client_state)]);
    let requests = [
        (
            "graph, unknown tenant",
            env.http.post(format!("{}/hooks/graph/nobody", env.base)).body(graph_body.clone()),
        ),
        (
            "graph lifecycle, unknown tenant",
            env.http.post(format!("{}/hooks/graph/nobody/lifecycle", env.base)).body(graph_body.clone()),
        ),
        (
            "graph, a name that cannot be a tenant",
            env.http.post(format!("{}/hooks/graph/No_Such%20Tenant", env.base)).body(graph_body),
        ),
        (
            "topdesk, unknown tenant",
            env.http
                .post(format!("{}/hooks/topdesk/nobody", env.base))
                .bearer_auth(&f.push_token)
                .body(hints(1)),
        ),
        (
            "topdesk, wrong token",
            env.http
                .post(format!("{}/hooks/topdesk/{}", env.base, f.tenant.name))
                .bearer_auth("wrong-push-token-secret")
                .body(hints(1)),
        ),
        (
            "topdesk, no token",
            env.http.post(format!("{}/hooks/topdesk/{}", env.base, f.tenant.name)).body(hints(1)),
        ),
    ];
    let mut answers = Vec::new();
    for (name, request) in requests {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let mut headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(k, _)| *k != "date")
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        let body = response.text().await.unwrap();
        answers.push((name, (status, headers, body)));
    }
    let (_, first) = &answers[0];
    assert_eq!(first.0, 404);
    assert_eq!(first.2, NO_SUCH_HOOK);
    for (name, answer) in &answers {
        assert_eq!(answer, first, "{name}: the same status, headers and body as an unknown tenant");
    }
    assert_eq!(env.state.unattributed_refusals(), 4, "unknown tenants are counted for no tenant");
    let audit = summaries(&env, f.tenant.id).await;
    assert_eq!(audit.len(), 1);
    let counts: Value = serde_json::from_str(&audit[0].target).unwrap();
    assert_eq!(counts, json!({"bad_token": 1, "missing_token": 1}));
    assert!(env.store.list_jobs(f.tenant.id, JobStatus::Queued).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_says_only_ok() {
    let (store, dir) = sqlite_store().await;
    let env = serve(store.clone(), Some(dir)).await;
    fixture(env.store.as_ref(), 0).await;
    for _ in 0..2 {
        let response = env.http.get(format!("{}/healthz", env.base)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        assert_eq!(response.text().await.unwrap(), "ok");
        // Even with the database gone: the public check tells nothing about it.
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_is_503_and_the_handshake_still_works() {
    let (store, dir) = sqlite_store().await;
    let env = serve(store.clone(), Some(dir)).await;
    let f = fixture(env.store.as_ref(), 0).await;
    store.close().await;
    let url = format!("{}/hooks/graph/{}", env.base, f.tenant.name);
    let body = collection(vec![notification(&f.subscription, &f.client_state)]);
    let response = env.http.post(&url).body(body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 503, "Graph must retry what was not kept");
    assert!(response.headers().contains_key("retry-after"));
    let text = response.text().await.unwrap();
    assert!(text.contains("nothing was kept") && !text.contains("pool"), "{text}");

    let response = env.http.post(format!("{url}?validationToken=still-here")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "the handshake touches no store");
    assert_eq!(response.text().await.unwrap(), "still-here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kept_item_carries_the_posts_validation_tokens() {
    let (store, dir) = sqlite_store().await;
    let env = serve(store, Some(dir)).await;
    let f = fixture(env.store.as_ref(), 0).await;
    let body = serde_json::to_vec(&json!({
        "value": [notification(&f.subscription, &f.client_state), notification(&f.subscription, &f.client_state)],
        "validationTokens": ["eyJ0eXAiOiJKV1QifQ.token-one.sig", "eyJ0eXAiOiJKV1QifQ.token-two.sig"]
    }))
    .unwrap();
    let response =
        env.http.post(format!("{}/hooks/graph/{}", env.base, f.tenant.name)).body(body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let jobs = env.store.list_jobs(f.tenant.id, JobStatus::Queued).await.unwrap();
    assert_eq!(jobs.len(), 2);
    for job in jobs {
        let inbox =
            env.store.get_inbox(f.tenant.id, job.payload["inbox_id"].as_i64().unwrap()).await.unwrap();
        assert_eq!(
            inbox.payload["validationTokens"],
            json!(["eyJ0eXAiOiJKV1QifQ.token-one.sig", "eyJ0eXAiOiJKV1QifQ.token-two.sig"]),
            "the worker needs the POST's tokens to check this item"
        );
        assert!(inbox.payload.get("clientState").is_none(), "the clear clientState is never kept");
    }
}

/// A Graph notification for `f`'s subscription about event `n` (to tell kept items apart).
fn numbered(f: &Fixture, client_state: &str, n: usize) -> Vec<u8> {
    let mut item = notification(&f.subscription, client_state);
    item["resource"] = json!(format!("Users/622eaaff/Events/event-{n}"));
    collection(vec![item])
}

fn client_from(address: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder().local_address(std::net::IpAddr::from(address)).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refused_posts_leaves_one_summary_row_and_valid_senders_get_through() {
    const FLOOD: usize = 10_000;
    const ROUNDS: usize = 5;
    const CONNECTIONS: usize = 8;
    let (store, dir) = sqlite_store().await;
    let rates = RateLimits {
        per_address_per_minute: 200.try_into().unwrap(),
        per_tenant_per_minute: 1_000.try_into().unwrap(),
    };
    // The clock stands still: the buckets never refill, so the counts below are exact.
    let env = serve_with(store.clone(), Some(dir), rates).await;
    let (a, b) = (fixture(env.store.as_ref(), 0).await, fixture(env.store.as_ref(), 1).await);
    let flooder = client_from([127, 0, 0, 1]);
    let sender = client_from([127, 0, 0, 2]);
    let url = |f: &Fixture| format!("{}/hooks/graph/{}", env.base, f.tenant.name);
    let bogus = numbered(&a, "wrong-client-state-secret", 0);

    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for round in 0..ROUNDS {
        let tasks: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let (http, url, body) = (flooder.clone(), url(&a), bogus.clone());
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    for _ in 0..FLOOD / ROUNDS / CONNECTIONS {
                        let response = http.post(&url).body(body.clone()).send().await.unwrap();
                        let status = response.status().as_u16();
                        if status == 429 {
                            let wait: u64 =
                                response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                            assert!(wait >= 1, "Retry-After {wait}");
                        }
                        seen.push(status);
                    }
                    seen
                })
            })
            .collect();
        for task in tasks {
            for status in task.await.unwrap() {
                *statuses.entry(status).or_default() += 1;
            }
        }
        // Among the flood: the valid sender from another address, to the flooded tenant.
        let response =
            sender.post(url(&a)).body(numbered(&a, &a.client_state, round + 1)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 202, "round {round}: the valid notification is accepted");
    }
    let response = sender.post(url(&b)).body(numbered(&b, &b.client_state, 1)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 202, "another tenant is not held up by the flood");
    assert_eq!(
        statuses,
        [(202, 200), (429, FLOOD - 200)].into_iter().collect(),
        "the address's 200 requests are screened (items refused, 202), the rest are rate limited"
    );

    // Every valid notification is kept, in the order sent.
    let jobs = env.store.list_jobs(a.tenant.id, JobStatus::Queued).await.unwrap();
    assert_eq!(jobs.len(), ROUNDS, "{jobs:#?}");
    let mut resources = Vec::new();
    for job in &jobs {
        assert_eq!(job.kind, "graph.notification");
        let item = env.store.get_inbox(a.tenant.id, job.payload["inbox_id"].as_i64().unwrap()).await.unwrap();
        assert_eq!(item.remote_ip.as_deref(), Some("127.0.0.2"));
        resources.push((item.id, item.payload["resource"].as_str().unwrap().to_owned()));
    }
    resources.sort();
    let want: Vec<String> = (1..=ROUNDS).map(|n| format!("Users/622eaaff/Events/event-{n}")).collect();
    assert_eq!(resources.into_iter().map(|(_, r)| r).collect::<Vec<_>>(), want, "kept in the order sent");
    assert_eq!(env.store.list_jobs(b.tenant.id, JobStatus::Queued).await.unwrap().len(), 1);

    // 10,000 refusals, one audit row whose counts add up.
    let audit = summaries(&env, a.tenant.id).await;
    assert_eq!(audit.len(), 1, "{audit:#?}");
    assert_eq!(audit[0].ip.as_deref(), Some("127.0.0.1"), "all refusals came from one address");
    let counts: std::collections::BTreeMap<String, u64> = serde_json::from_str(&audit[0].target).unwrap();
    assert_eq!(counts, [("bad_client_state".to_owned(), 200), ("rate_limited".to_owned(), 9_800)].into());
    assert_eq!(counts.values().sum::<u64>(), FLOOD as u64);
    assert!(summaries(&env, b.tenant.id).await.is_empty());

    // A rate-limited request does not touch the store: with the store closed it is still a 429, not a 503.
    store.close().await;
    let response = flooder.post(url(&a)).body(bogus).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 429);
}

// ---- EWS push notifications (`POST /hooks/ews/{tenant}?k=`) ----

mod ews {
    use super::*;
    use orb_ews::model::ItemId;
    use orb_ews::push::{
        Event, EventKind, Notification, SubscriptionStatus, notification_document, parse_notification_result,
    };
    use orb_store::jobs::{EwsNotificationItem, EwsNotificationJob, JobPayload as _};

    /// An EWS push subscription of `f`'s room, with its key.
    struct Ews {
        f: Fixture,
        subscription: String,
        key: String,
    }

    async fn ews_fixture(store: &dyn Store, n: usize) -> Ews {
        let f = fixture(store, n).await;
        let e = Ews { subscription: format!("AAMkADI5-ews-{n}"), key: format!("ews-key-secret+/={n}"), f };
        store
            .upsert_subscription(&SubscriptionRow {
                id: e.subscription.clone(),
                tenant_id: e.f.tenant.id,
                room_id: e.f.room.id,
                resource: format!("ews:{}/calendar", e.f.room.mailbox),
                client_state_hash: sha256(&e.key),
                rich: false,
                encryption_certificate_id: None,
                expires_at: t0() + chrono::Duration::days(3650),
                created_at: t0(),
                updated_at: t0(),
                watermark: Some("w0".into()),
            })
            .await
            .unwrap();
        e
    }

    fn created(subscription: &str, watermark: &str) -> Notification {
        Notification {
            subscription_id: subscription.to_owned(),
            previous_watermark: Some("w0".into()),
            more_events: false,
            events: vec![Event {
                kind: EventKind::Created,
                watermark: Some(watermark.to_owned()),
                timestamp: Some(t0()),
                item_id: Some(ItemId::new("AAMkA-item", "DwAAA-ck")),
                folder_id: None,
                parent_folder_id: Some("AQMkA-calendar".into()),
                unread_count: None,
                old_item_id: None,
                old_parent_folder_id: None,
            }],
        }
    }

    fn status(subscription: &str, watermark: &str) -> Notification {
        Notification {
            subscription_id: subscription.to_owned(),
            previous_watermark: Some("w0".into()),
            more_events: false,
            events: vec![Event {
                kind: EventKind::Status,
                watermark: Some(watermark.to_owned()),
                timestamp: None,
                item_id: None,
                folder_id: None,
                parent_folder_id: None,
                unread_count: None,
                old_item_id: None,
                old_parent_folder_id: None,
            }],
        }
    }

    /// The callback URL ORB gives Exchange: `?k=` URL-encoded.
    fn url(env: &Env, tenant: &str, key: Option<&str>) -> String {
        let mut url = format!("{}/hooks/ews/{tenant}", env.base);
        if let Some(key) = key {
            url.push_str("?k=");
            url.extend(url::form_urlencoded::byte_serialize(key.as_bytes()));
        }
        url
    }

    async fn post(env: &Env, url: &str, body: impl Into<reqwest::Body>) -> (u16, String, String) {
        let response = env
            .http
            .post(url)
            .header("content-type", "text/xml; charset=utf-8")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, content_type, response.text().await.unwrap())
    }

    /// The kept items of `e`'s tenant, through their jobs (each checked).
    async fn kept(env: &Env, e: &Ews) -> Vec<EwsNotificationItem> {
        let jobs = env.store.list_jobs(e.f.tenant.id, JobStatus::Queued).await.unwrap();
        let mut out = Vec::new();
        for job in jobs {
            assert_eq!(job.kind, "ews.notification");
            assert_eq!(job.lane, format!("room:{}", e.f.room.id), "the room's lane");
            assert!(job.correlation_id.is_some());
            let payload = EwsNotificationJob::of(&job).unwrap();
            assert_eq!(payload.subscription_id, e.subscription);
            let item = env.store.get_inbox(e.f.tenant.id, payload.inbox_id().unwrap()).await.unwrap();
            assert_eq!(item.source, InboxSource::Ews);
            assert_eq!(item.received_at, t0());
            assert_eq!(item.remote_ip.as_deref(), Some("127.0.0.1"));
            let text = item.payload.to_string();
            assert!(
                !text.contains(&e.key) && !text.contains("ews-key-secret"),
                "the key is never kept: {text}"
            );
            out.push(serde_json::from_value(item.payload).unwrap());
        }
        out
    }

    /// The refusal counts of `e`'s tenant (one summary row, or none).
    async fn refusals(env: &Env, e: &Ews) -> Value {
        let audit = summaries(env, e.f.tenant.id).await;
        assert!(audit.len() <= 1, "{audit:#?}");
        audit.first().map_or(json!({}), |a| serde_json::from_str(&a.target).unwrap())
    }

    fn assert_soap(name: &str, (code, content_type, body): &(u16, String, String), want: SubscriptionStatus) {
        assert_eq!(*code, 200, "{name}: {body}");
        assert_eq!(content_type, "text/xml; charset=utf-8", "{name}");
        assert_eq!(parse_notification_result(body).unwrap(), want, "{name}: {body}");
    }

    async fn known_subscription_is_kept_with_its_job_and_answered_ok(env: &Env) {
        let e = ews_fixture(env.store.as_ref(), 100).await;
        let answer = post(
            env,
            &url(env, e.f.tenant.name.as_str(), Some(&e.key)),
            notification_document(&created(&e.subscription, "w1")),
        )
        .await;
        assert_soap("known", &answer, SubscriptionStatus::Ok);
        let items = kept(env, &e).await;
        assert_eq!(items.len(), 1);
        let want = json!({
            "subscription_id": e.subscription,
            "previous_watermark": "w0",
            "more_events": false,
            "events": [{
                "kind": "CreatedEvent", "watermark": "w1", "timestamp": "2026-09-01T08:00:00Z",
                "item_id": {"id": "AAMkA-item", "change_key": "DwAAA-ck"}, "parent_folder_id": "AQMkA-calendar"
            }]
        });
        assert_eq!(serde_json::to_value(&items[0]).unwrap(), want, "the notification as documented");
        assert_eq!(refusals(env, &e).await, json!({}));

        // A keep-alive (StatusEvent only) is kept the same way.
        let answer = post(
            env,
            &url(env, e.f.tenant.name.as_str(), Some(&e.key)),
            notification_document(&status(&e.subscription, "w2")),
        )
        .await;
        assert_soap("status", &answer, SubscriptionStatus::Ok);
        let items = kept(env, &e).await;
        assert_eq!(items.len(), 2);
        assert!(items[1].is_status_only());
        assert_eq!(items[1].last_watermark(), Some("w2"));
    }

    async fn a_duplicate_delivery_is_kept_twice(env: &Env) {
        let e = ews_fixture(env.store.as_ref(), 101).await;
        let body = notification_document(&created(&e.subscription, "w1"));
        for _ in 0..2 {
            let answer = post(env, &url(env, e.f.tenant.name.as_str(), Some(&e.key)), body.clone()).await;
            assert_soap("duplicate", &answer, SubscriptionStatus::Ok);
        }
        let items = kept(env, &e).await;
        assert_eq!(items.len(), 2, "the store does not deduplicate; the engine skips by watermark");
        assert_eq!(items[0], items[1]);
    }

    async fn an_unknown_subscription_is_told_to_unsubscribe(env: &Env) {
        let e = ews_fixture(env.store.as_ref(), 102).await;
        let answer = post(
            env,
            &url(env, e.f.tenant.name.as_str(), Some(&e.key)),
            notification_document(&created("no-such-subscription", "w1")),
        )
        .await;
        assert_soap("unknown", &answer, SubscriptionStatus::Unsubscribe);
        assert!(kept(env, &e).await.is_empty(), "nothing kept");
        assert_eq!(refusals(env, &e).await, json!({"unknown_subscription": 1}));
    }

    async fn a_wrong_or_missing_key_is_403_and_counted(env: &Env) {
        let e = ews_fixture(env.store.as_ref(), 103).await;
        let body = notification_document(&created(&e.subscription, "w1"));
        for key in [Some("wrong-ews-key-secret"), None, Some("")] {
            let (code, content_type, text) =
                post(env, &url(env, e.f.tenant.name.as_str(), key), body.clone()).await;
            assert_eq!(code, 403, "{key:?}: {text}");
            assert!(content_type.starts_with("text/plain"), "{content_type}");
            assert!(!text.contains("secret"), "no key echoed: {text}");
        }
        assert!(kept(env, &e).await.is_empty(), "nothing kept");
        assert_eq!(refusals(env, &e).await, json!({"bad_client_state": 3}));
    }

    async fn a_malformed_body_is_400_and_nothing_is_kept(env: &Env) {
        let e = ews_fixture(env.store.as_ref(), 104).await;
        let error = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
          <m:SendNotification xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><m:ResponseMessages>
          <m:SendNotificationResponseMessage ResponseClass="Error"><m:MessageText>x</m:MessageText><m:ResponseCode>ErrorReadEventsFailed</m:ResponseCode></m:SendNotificationResponseMessage>
          </m:ResponseMessages></m:SendNotification></s:Body></s:Envelope>"#;
        let bodies: [Vec<u8>; 5] = [
            b"not xml".to_vec(),
            b"<a/>".to_vec(),
            br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>"#
                .to_vec(),
            b"\xff\xfe<".to_vec(),
            error.as_bytes().to_vec(),
        ];
        for body in bodies {
            let (code, _, text) = post(env, &url(env, e.f.tenant.name.as_str(), Some(&e.key)), body).await;
            assert_eq!(code, 400, "{text}");
            assert!(text.contains("SendNotification"), "{text}");
        }
        assert!(kept(env, &e).await.is_empty());
        assert_eq!(refusals(env, &e).await, json!({"malformed_body": 5}));
    }

    async fn a_body_over_the_limit_is_refused(env: &Env) {
        let e = ews_fixture(env.store.as_ref(), 105).await;
        let mut body = notification_document(&created(&e.subscription, "w1")).into_bytes();
        body.resize(MIB + 1, b' ');
        let (code, _, text) =
            post(env, &url(env, e.f.tenant.name.as_str(), Some(&e.key)), body.clone()).await;
        assert_eq!(code, 413, "{text}");
        assert!(kept(env, &e).await.is_empty());
        assert_eq!(refusals(env, &e).await, json!({"body_too_large": 1}));
        body.truncate(MIB);
        let answer = post(env, &url(env, e.f.tenant.name.as_str(), Some(&e.key)), body).await;
        assert_soap("exactly the limit", &answer, SubscriptionStatus::Ok);
        assert_eq!(kept(env, &e).await.len(), 1);
    }

    async fn an_unknown_tenant_is_404(env: &Env) {
        let e = ews_fixture(env.store.as_ref(), 106).await;
        let before = env.state.unattributed_refusals();
        let (code, _, text) = post(
            env,
            &url(env, "nobody", Some(&e.key)),
            notification_document(&created(&e.subscription, "w1")),
        )
        .await;
        assert_eq!((code, text.as_str()), (404, NO_SUCH_HOOK));
        assert_eq!(env.state.unattributed_refusals() - before, 1);
        assert!(kept(env, &e).await.is_empty());
    }

    async fn run(env: &Env) {
        known_subscription_is_kept_with_its_job_and_answered_ok(env).await;
        a_duplicate_delivery_is_kept_twice(env).await;
        an_unknown_subscription_is_told_to_unsubscribe(env).await;
        a_wrong_or_missing_key_is_403_and_counted(env).await;
        a_malformed_body_is_400_and_nothing_is_kept(env).await;
        a_body_over_the_limit_is_refused(env).await;
        an_unknown_tenant_is_404(env).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ews_intake_on_sqlite() {
        let (store, dir) = sqlite_store().await;
        run(&serve(store, Some(dir)).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ews_intake_on_postgres() {
        let Some((store, db)) = postgres_store().await else { return };
        run(&serve(store, Some(db)).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_ews_store_failure_is_503_never_ok() {
        let (store, dir) = sqlite_store().await;
        let env = serve(store.clone(), Some(dir)).await;
        let e = ews_fixture(env.store.as_ref(), 0).await;
        store.close().await;
        let (code, _, text) = post(
            &env,
            &url(&env, e.f.tenant.name.as_str(), Some(&e.key)),
            notification_document(&created(&e.subscription, "w1")),
        )
        .await;
        assert_eq!(code, 503, "Exchange must retry what was not kept: {text}");
        assert!(!text.contains("SubscriptionStatus"), "{text}");
    }
}
