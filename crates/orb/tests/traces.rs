//! Trace export: with `observability.otlp_endpoint` set, `orb serve` exports its spans over OTLP/HTTP
//! (protobuf) to `{endpoint}/v1/traces`; a worker span carries the tenant, the job's kind and lane and the
//! booking's correlation id. The collector here is a small axum app that decodes what it receives.

mod support;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use chrono::Duration;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use support::{Db, ROOMS, Site, sigterm, tomorrow, wait_exit};

type Spans = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

async fn collect(State(spans): State<Spans>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
    let mut out = spans.lock().unwrap();
    for resource in request.resource_spans {
        for scope in resource.scope_spans {
            for span in scope.spans {
                let attrs = span
                    .attributes
                    .into_iter()
                    .map(|kv| {
                        let v = match kv.value.and_then(|v| v.value) {
                            Some(Value::StringValue(s)) => s,
                            Some(other) => format!("{other:?}"),
                            None => String::new(),
                        };
                        (kv.key, v)
                    })
                    .collect();
                out.push((span.name, attrs));
            }
        }
    }
    ""
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_with_tenant_and_correlation_id() {
    let spans: Spans = Arc::default();
    let app = axum::Router::new().route("/v1/traces", post(collect)).with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut site = Site::new(&Db::Sqlite, "traced").await;
    site.set_var("ORB__OBSERVABILITY__OTLP_ENDPOINT", &format!("http://{addr}"));
    site.set_var("OTEL_BSP_SCHEDULE_DELAY", "200");
    let mut orb = site.spawn();
    site.healthy(&mut orb).await;
    // Booked before the room's subscription exists, the meeting is found by the onboarding sweep instead of a
    // notification; either way a worker carries it, so wait for the subscription and accept both kinds.
    site.eventually("room 1's subscription", 30, || site.subscribed(ROOMS[0]).then_some(())).await;
    site.book(ROOMS[0], tomorrow() + Duration::hours(9), "Traced meeting").await;
    let worker = site
        .eventually("a worker span with tenant and correlation id", 60, || {
            spans.lock().unwrap().iter().find_map(|(name, attrs)| {
                let get = |k: &str| attrs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
                (name == "worker"
                    && matches!(get("kind").as_deref(), Some("graph.notification" | "sync.observation"))
                    && get("correlation").is_some())
                .then(|| (get("tenant"), get("correlation"), get("lane")))
            })
        })
        .await;
    let (tenant, correlation, lane) = worker;
    assert_eq!(tenant.as_deref().map(str::len), Some(36), "the tenant id: {tenant:?}");
    assert_eq!(correlation.as_deref().map(str::len), Some(36), "a correlation id: {correlation:?}");
    assert!(lane.unwrap_or_default().starts_with("room:"));
    sigterm(&orb);
    assert!(wait_exit(&mut orb, 20).await.success(), "{}", site.log_text());
    let names: std::collections::BTreeSet<String> =
        spans.lock().unwrap().iter().map(|(n, _)| n.clone()).collect();
    eprintln!("figures: {} spans exported, names {names:?}", spans.lock().unwrap().len());
}
