//! A scripted session against the TOPdesk emulator in which every response body (and every request body
//! sent) is validated against the TOPdesk spec extracts in `testdata/topdesk-openapi/`
//! (reservations 2.0.0, supporting files 2.7.11, general 1.2.0): types, formats, required fields, enums,
//! nested objects and arrays with `$ref` resolution; `null` and undeclared properties are errors.

use std::collections::BTreeSet;
use std::sync::Arc;

use orb_core::FixedClock;
use orb_emulators::topdesk::{DoubleBooking, TopdeskEmulator};
use reqwest::Method;
use serde_json::{Value, json};

const SPEC_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/topdesk-openapi/");

struct Operation {
    method: String,
    segments: Vec<String>,
    template: String,
    input: Value,
    output: Value,
}

struct Spec {
    operations: Vec<Operation>,
}

impl Spec {
    fn load() -> Self {
        let mut operations = Vec::new();
        for file in [
            "reservations-2.0.0.endpoints.json",
            "supporting-files-2.7.11.subset.endpoints.json",
            "general-1.2.0.endpoints.json",
        ] {
            let text = std::fs::read_to_string(format!("{SPEC_DIR}{file}"))
                .unwrap_or_else(|e| panic!("read {file}: {e}"));
            let doc: Value = serde_json::from_str(&text).unwrap();
            for e in doc["endpoints"].as_array().unwrap() {
                let template = e["path"].as_str().unwrap().to_owned();
                operations.push(Operation {
                    method: e["method"].as_str().unwrap().to_owned(),
                    segments: template.trim_matches('/').split('/').map(str::to_owned).collect(),
                    template,
                    input: e["input_schema"].clone(),
                    output: e["output_schema"].clone(),
                });
            }
        }
        Self { operations }
    }

    /// The operation for a concrete path (relative to `/tas/api`); literal segments win over parameters.
    fn operation(&self, method: &str, path: &str) -> &Operation {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        self.operations
            .iter()
            .filter(|o| o.method == method && o.segments.len() == parts.len())
            .filter_map(|o| {
                let mut literal = 0;
                for (t, p) in o.segments.iter().zip(&parts) {
                    if t.starts_with('{') {
                        continue;
                    }
                    if t != p {
                        return None;
                    }
                    literal += 1;
                }
                Some((literal, o))
            })
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, o)| o)
            .unwrap_or_else(|| panic!("no spec operation for {method} {path}"))
    }
}

fn content_schema(holder: &Value) -> Option<&Value> {
    holder.get("content")?.as_object()?.values().next()?.get("schema")
}

/// Checks `value` against `schema`; `defs` resolves `#/$defs/…`. Errors name the JSON path.
fn validate(schema: &Value, value: &Value, defs: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/$defs/");
        match defs.get(name) {
            Some(target) => validate(target, value, defs, at, errors),
            None => errors.push(format!("{at}: unresolvable $ref {reference}")),
        }
        return;
    }
    if value.is_null() {
        errors.push(format!("{at}: null, but the spec declares nothing nullable"));
        return;
    }
    let kind = schema.get("type").and_then(Value::as_str).or(if schema.get("properties").is_some() {
        Some("object")
    } else {
        None
    });
    match kind {
        Some("object") => {
            let Some(map) = value.as_object() else {
                errors.push(format!("{at}: expected an object, got {value}"));
                return;
            };
            let props = schema.get("properties").and_then(Value::as_object);
            for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                let key = required.as_str().unwrap_or_default();
                if !map.contains_key(key) {
                    errors.push(format!("{at}: required property {key:?} is missing"));
                }
            }
            for (key, child) in map {
                match props.and_then(|p| p.get(key)) {
                    Some(child_schema) => validate(child_schema, child, defs, &format!("{at}.{key}"), errors),
                    None if props.is_some() => {
                        errors.push(format!("{at}: property {key:?} is not in the spec"))
                    }
                    None => {}
                }
            }
        }
        Some("array") => {
            let Some(items) = value.as_array() else {
                errors.push(format!("{at}: expected an array, got {value}"));
                return;
            };
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                errors.push(format!("{at}: more than {max} items"));
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                errors.push(format!("{at}: fewer than {min} items"));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(item_schema, item, defs, &format!("{at}[{i}]"), errors);
                }
            }
        }
        Some("string") => {
            let Some(text) = value.as_str() else {
                errors.push(format!("{at}: expected a string, got {value}"));
                return;
            };
            if let Some(options) = schema.get("enum").and_then(Value::as_array)
                && !options.iter().any(|o| o.as_str() == Some(text))
            {
                errors.push(format!("{at}: {text:?} is not one of {options:?}"));
            }
            let ok = match schema.get("format").and_then(Value::as_str) {
                Some("uuid") => uuid::Uuid::parse_str(text).is_ok(),
                Some("date-time") => {
                    chrono::DateTime::parse_from_rfc3339(text).is_ok()
                        || chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z").is_ok()
                }
                Some("date") => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok(),
                _ => true,
            };
            if !ok {
                errors.push(format!("{at}: {text:?} is not a valid {}", schema["format"]));
            }
            let len = text.chars().count() as u64;
            if schema.get("maxLength").and_then(Value::as_u64).is_some_and(|max| len > max) {
                errors.push(format!("{at}: longer than maxLength"));
            }
            if schema.get("minLength").and_then(Value::as_u64).is_some_and(|min| len < min) {
                errors.push(format!("{at}: shorter than minLength"));
            }
        }
        Some("integer") => match value.as_i64() {
            Some(n) => {
                if schema.get("format").and_then(Value::as_str) == Some("int32") && i32::try_from(n).is_err()
                {
                    errors.push(format!("{at}: {n} does not fit int32"));
                }
                if schema.get("minimum").and_then(Value::as_i64).is_some_and(|min| n < min)
                    || schema.get("maximum").and_then(Value::as_i64).is_some_and(|max| n > max)
                {
                    errors.push(format!("{at}: {n} is out of range"));
                }
            }
            None => errors.push(format!("{at}: expected an integer, got {value}")),
        },
        Some("number") if !value.is_number() => errors.push(format!("{at}: expected a number, got {value}")),
        Some("boolean") if !value.is_boolean() => {
            errors.push(format!("{at}: expected a boolean, got {value}"))
        }
        _ => {}
    }
}

impl Spec {
    /// Validates a response; `Err` lists every deviation.
    fn check_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: Option<&Value>,
    ) -> Result<(), Vec<String>> {
        let op = self.operation(method, path);
        let defs = op.output.get("$defs").cloned().unwrap_or(Value::Null);
        let Some(response) = op.output.get(status.to_string()) else {
            return Err(vec![format!("{method} {}: status {status} is not documented", op.template)]);
        };
        // 206 on GET /reservations documents no body; TOPdesk sends the same list as for 200.
        let schema = content_schema(response)
            .or_else(|| (status == 206).then(|| op.output.get("200").and_then(content_schema)).flatten());
        let mut errors = Vec::new();
        match (schema, body) {
            (Some(schema), Some(body)) => validate(schema, body, &defs, "$", &mut errors),
            (Some(_), None) => errors.push("a body was expected".to_owned()),
            (None, Some(body)) => errors.push(format!("no body is documented, got {body}")),
            (None, None) => {}
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// Validates a request body against the operation's request schema.
    fn check_request(&self, method: &str, path: &str, body: &Value) -> Result<(), Vec<String>> {
        let op = self.operation(method, path);
        let defs = op.input.get("$defs").cloned().unwrap_or(Value::Null);
        let Some(schema) = op.input.get("requestBody").and_then(content_schema) else {
            return Err(vec![format!("{method} {} takes no body", op.template)]);
        };
        let mut errors = Vec::new();
        validate(schema, body, &defs, "$", &mut errors);
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}

struct Session {
    spec: Spec,
    http: reqwest::Client,
    base: String,
    covered: BTreeSet<String>,
}

impl Session {
    /// One call: request body and response body are checked against the spec; returns status and body.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
        accept: &str,
    ) -> (u16, Value) {
        if let Some(body) = &body {
            self.spec
                .check_request(method.as_str(), path, body)
                .unwrap_or_else(|e| panic!("request {method} {path}: {e:#?}"));
        }
        let mut request = self
            .http
            .request(method.clone(), format!("{}/tas/api{path}", self.base))
            .basic_auth("orb-api", Some("app-secret"))
            .header("Accept", accept)
            .query(query);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let value: Option<Value> =
            if bytes.is_empty() { None } else { Some(serde_json::from_slice(&bytes).unwrap()) };
        self.spec
            .check_response(method.as_str(), path, status, value.as_ref())
            .unwrap_or_else(|e| panic!("response {method} {path} → {status}: {e:#?}\nbody: {value:?}"));
        self.covered.insert(format!("{method} {}", self.spec.operation(method.as_str(), path).template));
        (status, value.unwrap_or(Value::Null))
    }

    async fn get(&mut self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        self.call(Method::GET, path, query, None, "application/json").await
    }

    async fn post(&mut self, path: &str, query: &[(&str, &str)], body: Value) -> (u16, Value) {
        self.call(Method::POST, path, query, Some(body), "application/json").await
    }
}

#[tokio::test]
async fn every_emulator_response_matches_the_spec_extracts() {
    let clock =
        FixedClock::new(chrono::DateTime::parse_from_rfc3339("2026-03-01T08:00:00Z").unwrap().to_utc());
    let emulator = TopdeskEmulator::new(Arc::new(clock.clone()));
    emulator.add_account("orb-api", "app-secret");
    let anna = emulator.add_person("Anna", "Bakker", Some("Anna.Bakker@Contoso.com")).to_string();
    let bob = emulator.add_person("Bob", "Visser", Some("bob@contoso.com")).to_string();
    let room_a = emulator.add_room("Room A", 10, DoubleBooking::Refuse).to_string();
    let room_b = emulator.add_room("Room B", 0, DoubleBooking::StoreAsConflicting).to_string();
    emulator.add_cancellation_reason("Cancelled in Outlook", true);
    let served = emulator.serve().await.unwrap();
    let mut s = Session {
        spec: Spec::load(),
        http: reqwest::Client::new(),
        base: served.base_url.clone(),
        covered: BTreeSet::new(),
    };

    // General, operators, persons, locations.
    assert_eq!(s.get("/version", &[]).await.0, 200);
    assert_eq!(s.get("/productVersion", &[]).await.0, 200);
    assert_eq!(s.get("/operators/current", &[]).await.0, 200);
    let v2 = orb_topdesk::PERSONS_V2_ACCEPT;
    let (status, persons) = s
        .call(
            Method::GET,
            "/persons",
            &[("query", "email=='anna.bakker@contoso.com'"), ("fields", "*")],
            None,
            v2,
        )
        .await;
    assert_eq!((status, persons["size"].as_i64()), (200, Some(1)));
    let (status, page) = s.call(Method::GET, "/persons", &[("pageSize", "1")], None, v2).await;
    assert_eq!(status, 206);
    assert!(page["next"].as_str().is_some());
    assert_eq!(s.get("/locations", &[]).await.0, 200);
    let (_, all_fields) = s
        .get(
            "/locations",
            &[
                (
                    "$fields",
                    "id,name,roomNumber,capacity,branch,reservationManagement,status,modificationDate",
                ),
                ("query", "name=='Room A'"),
            ],
        )
        .await;
    assert_eq!(all_fields.as_array().unwrap().len(), 1);
    assert_eq!(s.get(&format!("/locations/id/{room_a}"), &[]).await.0, 200);
    assert_eq!(s.get(&format!("/locations/id/{}", uuid::Uuid::nil()), &[]).await.0, 404);
    assert_eq!(s.get("/reservableLocations", &[]).await.0, 200);
    assert_eq!(s.get(&format!("/reservableLocations/{room_b}"), &[]).await.0, 200);
    assert_eq!(s.get(&format!("/reservableLocations/{}", uuid::Uuid::nil()), &[]).await.0, 404);
    assert_eq!(s.get("/reservableLocations/not-a-uuid", &[]).await.0, 400);
    assert_eq!(s.get("/reservationCancellationReasons", &[("archived", "false")]).await.0, 200);
    assert_eq!(s.get("/reservationRejectionReasons", &[("archived", "false")]).await.0, 200);

    // Reservations: create (incl. bad input), get, list with 206, patch, actions.
    let create = |room: &str, start: &str, end: &str, link: Option<&str>| {
        let mut body = json!({
            "briefDescription": "Project sync", "notes": "From Exchange", "status": "planned",
            "requester": {"id": anna}, "numberOfPersons": 4,
            "participants": {"persons": [{"id": bob}]},
            "plannedStartDate": start, "plannedEndDate": end,
            "reservedFacilities": [{"location": {"id": room}}],
            "optionalFields1": {"text1": "x", "boolean1": true},
        });
        if let Some(link) = link {
            body["externalLink"] = json!({"id": link, "type": "7301", "date": "2026-03-01T08:00:00Z"});
        }
        body
    };
    let (status, first) = s
        .post(
            "/reservations",
            &[],
            create(&room_a, "2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z", Some("m-1")),
        )
        .await;
    assert_eq!(status, 201);
    let id = first["id"].as_str().unwrap().to_owned();
    for bad in [
        create(&room_a, "2026-03-03T10:00:00Z", "2026-03-03T09:00:00Z", None),
        create(&uuid::Uuid::nil().to_string(), "2026-03-03T09:00:00Z", "2026-03-03T10:00:00Z", None),
        create(&room_a, "2026-03-02T09:30:00Z", "2026-03-02T10:30:00Z", None),
    ] {
        assert_eq!(s.post("/reservations", &[], bad).await.0, 400);
    }
    for _ in 0..3 {
        let (status, dup) = s
            .post("/reservations", &[], create(&room_b, "2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z", None))
            .await;
        assert_eq!(status, 201);
        assert!(dup["status"] == "planned" || dup["status"] == "conflictingPlanned");
    }
    assert_eq!(s.get(&format!("/reservations/{id}"), &[]).await.0, 200);
    assert_eq!(
        s.get(&format!("/reservations/{id}"), &[("$fields", "id,status,reservedFacilities.location.id")])
            .await
            .0,
        200
    );
    assert_eq!(s.get(&format!("/reservations/{}", uuid::Uuid::nil()), &[]).await.0, 404);
    assert_eq!(s.get("/reservations", &[]).await.0, 200);
    assert_eq!(s.get("/reservations", &[("$top", "2")]).await.0, 206);
    assert_eq!(
        s.get("/reservations", &[("query", "externalLinks.type==7301;externalLinks.id=='m-1'")]).await.0,
        200
    );
    assert_eq!(s.get("/reservations", &[("query", "modificationDate=gt=2026-01-01T00:00:00Z")]).await.0, 400);
    assert_eq!(s.get("/reservations", &[("$top", "10001")]).await.0, 400);

    let patch =
        json!({"briefDescription": "Renamed", "numberOfPersons": 5, "optionalFields2": {"number1": 2.5}});
    assert_eq!(
        s.call(Method::PATCH, &format!("/reservations/{id}"), &[], Some(patch), "application/json").await.0,
        200
    );
    let change_link = json!({"externalLink": {"id": "m-2", "type": "7301"}});
    assert_eq!(
        s.call(Method::PATCH, &format!("/reservations/{id}"), &[], Some(change_link), "application/json")
            .await
            .0,
        400
    );
    let long = json!({"briefDescription": "x".repeat(100)});
    assert_eq!(
        s.call(Method::PATCH, &format!("/reservations/{id}"), &[], Some(long), "application/json").await.0,
        200
    );
    assert_eq!(
        s.post(
            &format!("/reservations/{id}/reschedule"),
            &[],
            json!({"plannedStartDate": "2026-03-02T11:00:00Z", "plannedEndDate": "2026-03-02T12:00:00Z"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        s.post(
            &format!("/reservations/{id}/reschedule"),
            &[],
            json!({"plannedStartDate": "2026-03-02T13:00:00Z", "plannedEndDate": "2026-03-02T12:00:00Z"})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        s.post(&format!("/reservations/{id}/participants/add"), &[], json!({"persons": [{"id": anna}]}))
            .await
            .0,
        200
    );
    assert_eq!(
        s.post(&format!("/reservations/{id}/participants/remove"), &[], json!({"persons": [{"id": bob}]}))
            .await
            .0,
        200
    );
    let (status, series) = s
        .post(
            &format!("/reservations/{id}/makeRecurrent/dates"),
            &[],
            json!({"dates": ["2026-03-09", "2026-03-16"]}),
        )
        .await;
    assert_eq!((status, series["results"].as_array().unwrap().len()), (200, 3));
    assert_eq!(
        s.post(&format!("/reservations/{id}/occurrences/dates"), &[], json!({"dates": ["2026-03-23"]}))
            .await
            .0,
        200
    );
    assert_eq!(
        s.call(
            Method::PUT,
            &format!("/reservations/{id}/occurrences/dates"),
            &[],
            Some(json!({"dates": ["2026-03-23"]})),
            "application/json"
        )
        .await
        .0,
        200
    );
    let too_many: Vec<String> = (1..=999)
        .map(|d| {
            (chrono::NaiveDate::from_ymd_opt(2026, 3, 3).unwrap() + chrono::Duration::days(d)).to_string()
        })
        .collect();
    assert_eq!(
        s.post(&format!("/reservations/{id}/occurrences/dates"), &[], json!({"dates": too_many})).await.0,
        400
    );

    let (_, single) = s
        .post("/reservations", &[], create(&room_a, "2026-04-01T09:00:00Z", "2026-04-01T10:00:00Z", None))
        .await;
    let single = single["id"].as_str().unwrap().to_owned();
    let moved = json!({"from": {"location": {"id": room_a}}, "to": {"location": {"id": room_b}}});
    assert_eq!(s.post(&format!("/reservations/{single}/reservedFacilities/move"), &[], moved).await.0, 200);
    assert_eq!(
        s.call(Method::POST, &format!("/reservations/{single}/cancel"), &[], None, "application/json")
            .await
            .0,
        204
    );
    assert_eq!(
        s.post(&format!("/reservations/{single}/cancel"), &[], json!({"name": "Cancelled in Outlook"}))
            .await
            .0,
        400
    );

    let mut request = create(&room_a, "2026-04-02T09:00:00Z", "2026-04-02T10:00:00Z", None);
    request["status"] = json!("request");
    let (_, req) = s.post("/reservations", &[], request).await;
    let req = req["id"].as_str().unwrap().to_owned();
    assert_eq!(
        s.call(Method::POST, &format!("/reservations/{req}/reject"), &[], None, "application/json").await.0,
        400
    );
    emulator_default_rejection(&served.emulator);
    let (status, rejected) =
        s.call(Method::POST, &format!("/reservations/{req}/reject"), &[], None, "application/json").await;
    assert_eq!((status, rejected["status"].as_str()), (200, Some("rejectedRequest")));

    // Authentication failure has TOPdesk's documented 401 shape.
    let response = reqwest::Client::new()
        .get(format!("{}/tas/api/operators/current", served.base_url))
        .basic_auth("orb-api", Some("wrong"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    s.spec.check_response("GET", "/operators/current", status, Some(&body)).unwrap();
    assert_eq!(status, 401);

    let expected = [
        "GET /version",
        "GET /productVersion",
        "GET /operators/current",
        "GET /persons",
        "GET /locations",
        "GET /locations/id/{id}",
        "GET /reservableLocations",
        "GET /reservableLocations/{id}",
        "GET /reservationCancellationReasons",
        "GET /reservationRejectionReasons",
        "GET /reservations",
        "POST /reservations",
        "GET /reservations/{identifier}",
        "PATCH /reservations/{identifier}",
        "POST /reservations/{identifier}/reschedule",
        "POST /reservations/{identifier}/cancel",
        "POST /reservations/{identifier}/reject",
        "POST /reservations/{identifier}/reservedFacilities/move",
        "POST /reservations/{identifier}/participants/add",
        "POST /reservations/{identifier}/participants/remove",
        "POST /reservations/{identifier}/makeRecurrent/dates",
        "POST /reservations/{identifier}/occurrences/dates",
        "PUT /reservations/{identifier}/occurrences/dates",
    ];
    let missing: Vec<&&str> = expected.iter().filter(|e| !s.covered.contains(**e)).collect();
    assert!(missing.is_empty(), "not exercised: {missing:?}");
}

fn emulator_default_rejection(emulator: &TopdeskEmulator) {
    emulator.with_state(|s| {
        let id = uuid::Uuid::new_v4();
        s.rejection_reasons.push(orb_emulators::topdesk::SearchItem {
            id,
            name: "No room".into(),
            archived: false,
        });
        s.settings.default_rejection_reason = Some(id);
    });
}

#[test]
fn the_validator_rejects_bodies_that_break_the_spec() {
    let spec = Spec::load();
    let check = |body: Value, expected: &str| {
        let result = spec.check_response("GET", "/reservations/abc", 200, Some(&body));
        match (result, expected) {
            (Ok(()), "") => {}
            (Err(errors), want) if !want.is_empty() => {
                assert!(errors.iter().any(|e| e.contains(want)), "{errors:?} should mention {want:?}");
            }
            (got, want) => panic!("body {body}: got {got:?}, expected {want:?}"),
        }
    };
    check(
        json!({"id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "status": "planned", "externalLinks": [{"id": "x", "type": "1"}]}),
        "",
    );
    check(json!({"status": "booked"}), "$.status: \"booked\" is not one of");
    check(json!({"id": "not-a-uuid"}), "$.id: \"not-a-uuid\" is not a valid");
    check(json!({"plannedStartDate": 5}), "$.plannedStartDate: expected a string");
    check(json!({"plannedStartDate": "10-03-2026"}), "is not a valid \"date-time\"");
    check(json!({"surprise": 1}), "property \"surprise\" is not in the spec");
    check(
        json!({"externalLinks": [{"id": "x"}]}),
        "$.externalLinks[0]: required property \"type\" is missing",
    );
    check(json!({"number": null}), "$.number: null");
    check(
        json!({"reservedFacilities": [{"location": {"roomNumber": 7}}]}),
        "$.reservedFacilities[0].location.roomNumber",
    );
    check(json!({"numberOfPersons": 1.5}), "expected an integer");
    check(json!({"archived": "no"}), "expected a boolean");
    check(json!([]), "expected an object");
    assert!(
        spec.check_response("POST", "/reservations/abc/cancel", 204, Some(&json!({}))).is_err(),
        "204 has no body"
    );
    assert!(spec.check_response("GET", "/reservations/abc", 418, None).is_err(), "undocumented status");
    assert!(spec.check_request("POST", "/reservations", &json!({"requester": {"id": "x"}})).is_err());
}
