//! A scripted session against the Graph emulator whose every response body (of the kinds ORB's client
//! reads) is validated against the Graph schema subset (`testdata/graph-openapi-subset.yaml`).
//!
//! The checker handles `$ref`, `allOf`, `anyOf`, `type`, `nullable`, `enum`, `required`, `items`,
//! `properties`, the formats `date-time`, `date`, `uuid`, `int32`, and refuses properties a closed type
//! does not declare (annotations `@odata.*` / `@removed` aside). In the CSDL extract an `anyOf` alternative
//! `{type: object, nullable: true}` without properties is how "or null" is written; it is read as that.

mod support;

use reqwest::Client;
use serde_json::{Value, json};
use support::{CLIENT_ID, SECRET, TENANT, World};

const SCHEMA_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/graph-openapi-subset.yaml");

struct Schema {
    root: Value,
}

impl Schema {
    fn load() -> Self {
        let text = std::fs::read_to_string(SCHEMA_PATH).expect("the schema subset is in testdata/");
        Self { root: serde_yaml_ng::from_str(&text).expect("the schema subset is YAML") }
    }

    fn named(&self, name: &str) -> &Value {
        let s = &self.root["components"]["schemas"][name];
        assert!(!s.is_null(), "schema {name} not in the subset");
        s
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => self.named(r.trim_start_matches("#/components/schemas/")),
            None => schema,
        }
    }

    /// Every property name declared by a schema and its `allOf` parts; and whether it is open.
    fn declared(&self, schema: &Value, names: &mut Vec<String>) -> bool {
        let schema = self.resolve(schema);
        let mut open = schema.get("additionalProperties") == Some(&Value::Bool(true));
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            names.extend(props.keys().cloned());
        }
        for part in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            open |= self.declared(part, names);
        }
        open
    }

    fn check(&self, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if schema.get("allOf").is_some() {
            self.check_parts(schema, value, path, errors);
            self.check_closed(schema, value, path, errors);
            return;
        }
        if let Some(alternatives) = schema.get("anyOf").and_then(Value::as_array) {
            let ok = alternatives.iter().any(|alt| {
                let bare_null = alt.get("nullable") == Some(&Value::Bool(true))
                    && alt.get("properties").is_none()
                    && alt.get("$ref").is_none();
                if bare_null {
                    return value.is_null();
                }
                let mut sub = Vec::new();
                self.check(alt, value, path, &mut sub);
                sub.is_empty()
            });
            if !ok {
                let mut first = Vec::new();
                self.check(&alternatives[0], value, path, &mut first);
                errors.push(format!("{path}: matches no alternative ({})", first.join("; ")));
            }
            return;
        }
        self.check_shallow(schema, value, path, errors);
        self.check_closed(schema, value, path, errors);
    }

    fn check_closed(&self, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
        let Some(obj) = value.as_object() else { return };
        let mut names = Vec::new();
        if self.declared(schema, &mut names) || names.is_empty() && schema.get("type").is_none() {
            return;
        }
        for key in obj.keys() {
            if !key.starts_with('@') && !key.contains("@odata.") && !names.contains(key) {
                errors.push(format!("{path}: property {key:?} is not in the schema"));
            }
        }
    }

    /// Checks each `allOf` part (recursively) without the closed-type check, which only the whole can do.
    fn check_parts(&self, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        match schema.get("allOf").and_then(Value::as_array) {
            Some(parts) => parts.iter().for_each(|part| self.check_parts(part, value, path, errors)),
            None => self.check_shallow(schema, value, path, errors),
        }
    }

    /// Type, enum, format, required and properties of one schema (its `allOf` parts handled by the caller).
    fn check_shallow(&self, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if schema.get("anyOf").is_some() {
            return self.check(schema, value, path, errors);
        }
        if value.is_null() {
            if schema.get("nullable") != Some(&Value::Bool(true)) {
                errors.push(format!("{path}: null where the schema does not allow it"));
            }
            return;
        }
        let format = schema.get("format").and_then(Value::as_str);
        match schema.get("type").and_then(Value::as_str) {
            Some("object") | None => {
                let Some(obj) = value.as_object() else {
                    if schema.get("type").is_some() {
                        errors.push(format!("{path}: expected an object, got {value}"));
                    }
                    return;
                };
                for req in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                    let name = req.as_str().unwrap_or_default();
                    if !obj.contains_key(name) {
                        errors.push(format!("{path}: required property {name:?} missing"));
                    }
                }
                if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                    for (name, prop) in props {
                        if let Some(v) = obj.get(name) {
                            self.check(prop, v, &format!("{path}.{name}"), errors);
                        }
                    }
                }
            }
            Some("array") => match value.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check(&schema["items"], item, &format!("{path}[{i}]"), errors);
                    }
                }
                None => errors.push(format!("{path}: expected an array, got {value}")),
            },
            Some("string") => match value.as_str() {
                None => errors.push(format!("{path}: expected a string, got {value}")),
                Some(s) => {
                    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
                        && !allowed.iter().any(|a| a.as_str() == Some(s))
                    {
                        errors.push(format!("{path}: {s:?} is not one of {allowed:?}"));
                    }
                    let bad = match format {
                        Some("date-time") => chrono::DateTime::parse_from_rfc3339(s).is_err(),
                        Some("date") => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_err(),
                        Some("uuid") => uuid::Uuid::parse_str(s).is_err(),
                        _ => false,
                    };
                    if bad {
                        errors.push(format!("{path}: {s:?} is not a valid {}", format.unwrap_or_default()));
                    }
                }
            },
            Some("integer") => {
                let ok = value.as_i64().is_some_and(|n| format != Some("int32") || i32::try_from(n).is_ok());
                if !ok {
                    errors.push(format!("{path}: expected an integer ({format:?}), got {value}"));
                }
            }
            Some("number") => {
                if !value.is_number() {
                    errors.push(format!("{path}: expected a number, got {value}"));
                }
            }
            Some("boolean") => {
                if !value.is_boolean() {
                    errors.push(format!("{path}: expected a boolean, got {value}"));
                }
            }
            Some(other) => errors.push(format!("{path}: unknown schema type {other}")),
        }
    }

    fn errors(&self, type_name: &str, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(self.named(type_name), value, type_name, &mut errors);
        errors
    }

    /// A collection page: `value` items of `type_name`, plus only `@odata.*` annotations.
    fn collection_errors(&self, type_name: &str, page: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        match page.get("value").and_then(Value::as_array) {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.check(self.named(type_name), item, &format!("value[{i}]"), &mut errors);
                }
            }
            None => errors.push("collection: no value array".to_owned()),
        }
        for key in page.as_object().into_iter().flatten().map(|(k, _)| k) {
            if key != "value" && !key.starts_with("@odata.") {
                errors.push(format!("collection: unexpected property {key:?}"));
            }
        }
        errors
    }
}

#[test]
fn the_checker_refuses_wrong_bodies() {
    let schema = Schema::load();
    fn check(schema: &Schema, type_name: &str, body: Value, complaint: Option<&str>) {
        let errors = schema.errors(type_name, &body);
        match complaint {
            None => assert!(errors.is_empty(), "{type_name} {body}: {errors:?}"),
            Some(c) => assert!(
                errors.iter().any(|e| e.contains(c)),
                "{type_name} {body}: expected {c:?} in {errors:?}"
            ),
        }
    }
    let ok_event = json!({"id": "A", "subject": "S", "type": "singleInstance", "attendees": [
        {"emailAddress": {"address": "r@x.com"}, "type": "resource", "status": {"response": "accepted", "time": null}}],
        "start": {"dateTime": "2026-09-01T09:00:00.0000000", "timeZone": "UTC"}, "location": null, "x-open": 1});
    check(&schema, "microsoft.graph.event", ok_event, None);
    check(&schema, "microsoft.graph.event", json!({"type": "meeting"}), Some("is not one of"));
    check(&schema, "microsoft.graph.event", json!({"subject": 5}), Some("expected a string"));
    check(&schema, "microsoft.graph.event", json!({"cancelledOccurrences": null}), Some("null"));
    check(&schema, "microsoft.graph.event", json!({"id": null}), Some("null"));
    check(&schema, "microsoft.graph.event", json!({"createdDateTime": "yesterday"}), Some("date-time"));
    check(&schema, "microsoft.graph.event", json!({"start": {"dateTime": 9}}), Some("no alternative"));
    check(
        &schema,
        "microsoft.graph.event",
        json!({"attendees": [{"status": {"response": "yes"}}]}),
        Some("matches no alternative"),
    );
    check(&schema, "microsoft.graph.event", json!({"start": {"dateTime": "x", "tz": "UTC"}}), Some("\"tz\""));
    check(
        &schema,
        "microsoft.graph.room",
        json!({"id": "r", "displayName": "R", "emailAdress": "x"}),
        Some("emailAdress"),
    );
    check(
        &schema,
        "microsoft.graph.room",
        json!({"id": "r", "displayName": "R", "capacity": "50"}),
        Some("integer"),
    );
    check(
        &schema,
        "microsoft.graph.room",
        json!({"id": "r", "displayName": "R", "capacity": 5_000_000_000i64}),
        Some("int32"),
    );
    check(&schema, "microsoft.graph.recurrenceRange", json!({"startDate": "2026-13-01"}), Some("date"));
    let required = Schema {
        root: json!({"components": {"schemas": {"t": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}}}}),
    };
    check(&required, "t", json!({}), Some("required property \"id\""));
}

/// The `$batch` envelope and Graph's error body, which the YAML subset does not carry (`paths: {}`): written
/// from Microsoft Graph's documentation of JSON batching.
fn batch_schema() -> Schema {
    Schema {
        root: json!({"components": {"schemas": {
            "batchResponse": {"type": "object", "required": ["responses"], "properties": {
                "responses": {"type": "array", "items": {"$ref": "#/components/schemas/batchResponseItem"}}}},
            "batchResponseItem": {"type": "object", "required": ["id", "status"], "properties": {
                "id": {"type": "string"}, "status": {"type": "integer", "format": "int32"},
                "headers": {"type": "object", "additionalProperties": true},
                "body": {"additionalProperties": true}}},
            "odataError": {"type": "object", "required": ["error"], "properties": {
                "error": {"type": "object", "required": ["code", "message"], "additionalProperties": true,
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}
        }}}),
    }
}

#[test]
fn the_batch_schema_refuses_wrong_envelopes() {
    let schema = batch_schema();
    let ok = json!({"responses": [{"id": "1", "status": 200, "headers": {"Content-Type": "application/json"}, "body": {"id": "A"}}]});
    assert!(schema.errors("batchResponse", &ok).is_empty());
    let cases = [
        (json!({"value": []}), "required property \"responses\""),
        (json!({"responses": [{"id": "1", "status": "200"}]}), "expected an integer"),
        (json!({"responses": [{"status": 200}]}), "required property \"id\""),
        (json!({"responses": [{"id": "1", "status": 200, "Status": 1}]}), "\"Status\""),
    ];
    for (body, says) in cases {
        let errors = schema.errors("batchResponse", &body);
        assert!(errors.iter().any(|e| e.contains(says)), "{body}: expected {says:?} in {errors:?}");
    }
    assert!(!schema.errors("odataError", &json!({"error": {"code": 5}})).is_empty());
}

async fn body(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status, "{}", resp.url());
    resp.json().await.expect("JSON body")
}

#[tokio::test]
async fn every_emulator_body_the_client_reads_follows_the_schema() {
    let schema = Schema::load();
    let world = World::start().await;
    let base = world.served.base_url.clone();
    let http = Client::new();
    let token: Value = http
        .post(format!("{base}/{TENANT}/oauth2/v2.0/token"))
        .form(&[
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let g = format!("{base}/v1.0");
    let prefer = "outlook.timezone=\"W. Europe Standard Time\", IdType=\"ImmutableId\", odata.maxpagesize=2";
    let req = |m: reqwest::Method, url: String| {
        http.request(m, url).header("Authorization", &bearer).header("Prefer", prefer)
    };
    let mut checked = Vec::new();
    let mut all_errors = Vec::new();
    let mut record = |what: &str, errors: Vec<String>| {
        checked.push(what.to_owned());
        all_errors.extend(errors.into_iter().map(|e| format!("{what}: {e}")));
    };

    let prop = orb_graph::ORB_MATCH_PROPERTY_ID;
    let single = json!({
        "subject": "Review", "transactionId": "s-1",
        "start": {"dateTime": "2026-09-02T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-09-02T10:00:00", "timeZone": "UTC"},
        "location": {"displayName": "Room 1", "locationEmailAddress": "room1@contoso.com", "locationType": "conferenceRoom"},
        "attendees": [{"emailAddress": {"address": "room1@contoso.com"}, "type": "resource"}],
        "singleValueExtendedProperties": [{"id": prop, "value": "s-1"}]
    });
    let created = body(
        req(reqwest::Method::POST, format!("{g}/users/anna@contoso.com/events"))
            .json(&single)
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    record("create", schema.errors("microsoft.graph.event", &created));
    let id = created["id"].as_str().unwrap().to_owned();

    let mut series = single.clone();
    series["transactionId"] = json!("s-2");
    series["singleValueExtendedProperties"][0]["value"] = json!("s-2");
    series["start"]["dateTime"] = json!("2026-09-03T13:00:00");
    series["end"]["dateTime"] = json!("2026-09-03T14:00:00");
    series["recurrence"] = json!({
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["thursday"], "firstDayOfWeek": "sunday"},
        "range": {"type": "numbered", "startDate": "2026-09-03", "numberOfOccurrences": 3}});
    let master = body(
        req(reqwest::Method::POST, format!("{g}/users/anna@contoso.com/events"))
            .json(&series)
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    record("create series", schema.errors("microsoft.graph.event", &master));
    let master_id = master["id"].as_str().unwrap().to_owned();

    let expand = format!("singleValueExtendedProperties($filter=id eq '{prop}')");
    let got = body(
        req(reqwest::Method::GET, format!("{g}/users/anna@contoso.com/events/{id}"))
            .query(&[("$expand", &expand)])
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(got["singleValueExtendedProperties"][0]["value"], "s-1");
    record("get", schema.errors("microsoft.graph.event", &got));

    let patched = body(
        req(reqwest::Method::PATCH, format!("{g}/users/anna@contoso.com/events/{id}"))
            .json(&json!({"subject": "Review 2"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    record("update", schema.errors("microsoft.graph.event", &patched));

    let filter = format!("singleValueExtendedProperties/Any(ep: ep/id eq '{prop}' and ep/value eq 's-1')");
    let found = body(
        req(reqwest::Method::GET, format!("{g}/users/anna@contoso.com/events"))
            .query(&[("$filter", &filter), ("$expand", &expand)])
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(found["value"].as_array().map(Vec::len), Some(1));
    record("find by match id", schema.collection_errors("microsoft.graph.event", &found));

    let window = [("startDateTime", "2026-09-01T00:00:00Z"), ("endDateTime", "2026-10-01T00:00:00Z")];
    let instances = body(
        req(reqwest::Method::GET, format!("{g}/users/anna@contoso.com/events/{master_id}/instances"))
            .query(&window)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let first_occurrence = instances["value"][0]["id"].as_str().unwrap().to_owned();
    let second_occurrence = instances["value"][1]["id"].as_str().unwrap().to_owned();
    record("instances", schema.collection_errors("microsoft.graph.event", &instances));
    let moved = json!({"start": {"dateTime": "2026-09-10T15:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-09-10T16:00:00", "timeZone": "UTC"}});
    let exception = body(
        req(reqwest::Method::PATCH, format!("{g}/users/anna@contoso.com/events/{second_occurrence}"))
            .json(&moved)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(exception["type"], "exception");
    record("update occurrence", schema.errors("microsoft.graph.event", &exception));
    let deleted =
        req(reqwest::Method::DELETE, format!("{g}/users/anna@contoso.com/events/{first_occurrence}"))
            .send()
            .await
            .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    let master_after = body(
        req(reqwest::Method::GET, format!("{g}/users/anna@contoso.com/events/{master_id}"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    record("get series master", schema.errors("microsoft.graph.event", &master_after));

    for mailbox in ["anna@contoso.com", "room1@contoso.com"] {
        let view = body(
            req(reqwest::Method::GET, format!("{g}/users/{mailbox}/calendarView"))
                .query(&window)
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        record(&format!("calendarView {mailbox}"), schema.collection_errors("microsoft.graph.event", &view));
    }

    let mut url = format!(
        "{g}/users/room1@contoso.com/calendarView/delta?startDateTime=2026-09-01T00:00:00Z&endDateTime=2026-10-01T00:00:00Z"
    );
    for round in 0..2 {
        loop {
            let page = body(req(reqwest::Method::GET, url.clone()).send().await.unwrap(), 200).await;
            record(&format!("delta round {round}"), schema.collection_errors("microsoft.graph.event", &page));
            if let Some(next) = page["@odata.nextLink"].as_str() {
                url = next.to_owned();
                continue;
            }
            url = page["@odata.deltaLink"].as_str().expect("round ends with a deltaLink").to_owned();
            break;
        }
        let cancel = req(reqwest::Method::POST, format!("{g}/users/anna@contoso.com/events/{id}/cancel"))
            .json(&json!({"Comment": "off"}))
            .send()
            .await
            .unwrap();
        if round == 0 {
            assert_eq!(cancel.status().as_u16(), 202);
        }
        // Removal straight from the room calendar makes a `@removed` item in the next round.
        let view = body(
            req(reqwest::Method::GET, format!("{g}/users/room1@contoso.com/calendarView"))
                .query(&window)
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        if let Some(room_item) = view["value"][0]["id"].as_str() {
            req(reqwest::Method::DELETE, format!("{g}/users/room1@contoso.com/events/{room_item}"))
                .send()
                .await
                .unwrap();
        }
    }

    let rooms = body(
        req(reqwest::Method::GET, format!("{g}/places/microsoft.graph.room")).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(rooms["value"].as_array().map(Vec::len), Some(2));
    record("rooms", schema.collection_errors("microsoft.graph.room", &rooms));

    // Subscriptions (rich, with the lifecycle URL) and the notifications ORB's webhooks read.
    let rx = support::Receiver::start().await;
    let now =
        chrono::DateTime::parse_from_rfc3339("2026-09-01T06:00:00Z").unwrap().with_timezone(&chrono::Utc);
    let key = orb_crypto::NotificationPrivateKey::generate().unwrap();
    let cert =
        orb_crypto::EncryptionCertificate::generate(key, now, now + chrono::Duration::days(30)).unwrap();
    let new_sub = json!({
        "changeType": "created,updated,deleted", "notificationUrl": rx.notify_url().as_str(),
        "lifecycleNotificationUrl": rx.lifecycle_url().as_str(),
        "resource": "users/room1@contoso.com/events?$select=subject,start,end,iCalUId",
        "expirationDateTime": "2026-09-02T05:00:00Z", "clientState": "s3cr3t-state", "includeResourceData": true,
        "encryptionCertificate": cert.certificate_base64(), "encryptionCertificateId": cert.id()
    });
    let sub = body(
        req(reqwest::Method::POST, format!("{g}/subscriptions")).json(&new_sub).send().await.unwrap(),
        201,
    )
    .await;
    record("create subscription", schema.errors("microsoft.graph.subscription", &sub));
    let sub_id = sub["id"].as_str().unwrap().to_owned();
    let got =
        body(req(reqwest::Method::GET, format!("{g}/subscriptions/{sub_id}")).send().await.unwrap(), 200)
            .await;
    assert!(got.get("clientState").is_none(), "GET never returns clientState");
    record("get subscription", schema.errors("microsoft.graph.subscription", &got));
    let renewed = body(
        req(reqwest::Method::PATCH, format!("{g}/subscriptions/{sub_id}"))
            .json(&json!({"expirationDateTime": "2026-09-02T06:00:00Z"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    record("renew subscription", schema.errors("microsoft.graph.subscription", &renewed));
    let listed =
        body(req(reqwest::Method::GET, format!("{g}/subscriptions")).send().await.unwrap(), 200).await;
    record("list subscriptions", schema.collection_errors("microsoft.graph.subscription", &listed));
    let reauth =
        req(reqwest::Method::POST, format!("{g}/subscriptions/{sub_id}/reauthorize")).send().await.unwrap();
    assert_eq!(reauth.status().as_u16(), 204);

    req(reqwest::Method::POST, format!("{g}/users/anna@contoso.com/events"))
        .json(&json!({"subject": "Notified", "start": {"dateTime": "2026-09-20T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-09-20T10:00:00", "timeZone": "UTC"},
            "attendees": [{"emailAddress": {"address": "room1@contoso.com"}, "type": "resource"}]}))
        .send()
        .await
        .unwrap();
    world.em.send_lifecycle(&sub_id, orb_graph::model::LifecycleEventType::Missed);
    for path in ["/notify", "/lifecycle"] {
        let posts = rx.wait_for(path, 1).await;
        record(
            &format!("notification at {path}"),
            schema.errors("microsoft.graph.changeNotificationCollection", &posts[0].json()),
        );
    }
    let jwks: Value = http.get(world.served.jwks_url()).send().await.unwrap().json().await.unwrap();
    assert!(jwks["keys"][0]["kid"].is_string(), "{jwks}");

    // `$batch`: the envelope, and each sub-response body by what it is.
    let batch = body(
        req(reqwest::Method::POST, format!("{g}/$batch"))
            .json(&json!({"requests": [
                {"id": "get", "method": "GET", "url": format!("/users/anna@contoso.com/events/{master_id}"),
                 "headers": {"Prefer": prefer}},
                {"id": "view", "method": "GET", "url": "/users/room1@contoso.com/calendarView?startDateTime=2026-09-01T00:00:00Z&endDateTime=2026-10-01T00:00:00Z"},
                {"id": "rooms", "method": "GET", "url": "/places/microsoft.graph.room"},
                {"id": "nobody", "method": "GET", "url": "/users/nobody@contoso.com/events"}
            ]}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let batch_schema = batch_schema();
    record("batch envelope", batch_schema.errors("batchResponse", &batch));
    let responses = batch["responses"].as_array().expect("responses");
    assert_eq!(responses.len(), 4, "{batch}");
    for item in responses {
        let (id, status, sub) = (item["id"].as_str().unwrap_or_default(), &item["status"], &item["body"]);
        let errors = match id {
            "get" => schema.errors("microsoft.graph.event", sub),
            "view" => schema.collection_errors("microsoft.graph.event", sub),
            "rooms" => schema.collection_errors("microsoft.graph.room", sub),
            _ => batch_schema.errors("odataError", sub),
        };
        assert_eq!(status, if id == "nobody" { 404 } else { 200 }, "{item}");
        record(&format!("batch item {id}"), errors);
    }

    assert!(all_errors.is_empty(), "schema violations:\n{}", all_errors.join("\n"));
    assert!(checked.len() >= 20, "the session covered {checked:?}");
}
