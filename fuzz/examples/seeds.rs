//! Writes the seed corpus `fuzz/corpus/<target>/` (run from `fuzz/`: `cargo run --example seeds`).
//!
//! Seeds come from the repository's `testdata/` where it has them (Microsoft's rich-notification vector
//! and its synthetic collection, the EWS reference answers) and are written by hand where it does not
//! (Graph and TOPdesk JSON, FIQL, settings). The validation token of `graph_notification`'s signed seed is
//! issued by the fuzz fixture's fixed signer, so it validates at `orb_fuzz::NOW` and the fuzzer starts from
//! a POST that passes every check.

use std::path::{Path, PathBuf};

use orb_crypto::ValidationTokenClaims;
use orb_fuzz::{APP_ID, GRAPH, NOW, TENANT_ID};

const VECTOR_DIR: &str = "../testdata/graph-vectors/msgraph-core-rich-notification";

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("corpus");
    let read = |path: PathBuf| std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).expect("a writable corpus folder");
        std::fs::write(dir.join(name), data).expect("a writable seed");
    };
    let with_mode = |mode: u8, body: &[u8]| [&[mode][..], body].concat();

    // graph_notification: the synthetic collection as it is (its token is a placeholder that fails), the
    // same with a token that validates, a basic and a lifecycle POST; plaintexts for the round trip.
    let synthetic = read(root.join(VECTOR_DIR).join("synthetic/notification-collection.synthetic.json"));
    write("graph_notification", "synthetic-collection", &with_mode(0, &synthetic));
    let mut signed: serde_json::Value = serde_json::from_slice(&synthetic).expect("the synthetic JSON");
    let claims = ValidationTokenClaims::graph(APP_ID, TENANT_ID, *NOW - chrono::Duration::hours(1));
    let token = GRAPH.signer.issue(&claims).expect("a signed token");
    signed["validationTokens"] = serde_json::json!([token]);
    let signed = serde_json::to_vec_pretty(&signed).expect("JSON");
    write("graph_notification", "signed-rich-collection", &with_mode(0, &signed));
    write("graph_notification", "basic-collection", &with_mode(0, BASIC_NOTIFICATION.as_bytes()));
    write("graph_notification", "lifecycle-collection", &with_mode(0, LIFECYCLE_NOTIFICATION.as_bytes()));
    write(
        "graph_notification",
        "vector-plaintext",
        &with_mode(1, &read(root.join(VECTOR_DIR).join("derived/plaintext.json"))),
    );
    write("graph_notification", "event-plaintext", &with_mode(1, GRAPH_EVENT.as_bytes()));

    // graph_models
    write("graph_models", "event", GRAPH_EVENT.as_bytes());
    write("graph_models", "event-series-master", GRAPH_SERIES_MASTER.as_bytes());
    write("graph_models", "delta-page", GRAPH_DELTA_PAGE.as_bytes());
    write("graph_models", "rooms", GRAPH_ROOMS.as_bytes());
    write("graph_models", "subscription", GRAPH_SUBSCRIPTION.as_bytes());
    write("graph_models", "error", GRAPH_ERROR.as_bytes());
    write("graph_models", "token", GRAPH_TOKEN.as_bytes());
    write("graph_models", "batch", GRAPH_BATCH.as_bytes());
    write("graph_models", "synthetic-collection", &synthetic);

    // topdesk_models
    write("topdesk_models", "reservation", TOPDESK_RESERVATION.as_bytes());
    write(
        "topdesk_models",
        "reservation-list",
        format!("{{\"results\":[{TOPDESK_RESERVATION}]}}").as_bytes(),
    );
    write("topdesk_models", "persons", TOPDESK_PERSONS.as_bytes());
    write("topdesk_models", "locations", TOPDESK_LOCATIONS.as_bytes());
    write("topdesk_models", "error-body", TOPDESK_ERROR.as_bytes());
    write("topdesk_models", "datetime-offset", b"2015-11-15T14:00:00.000+0200");

    // fiql
    for (i, q) in FIQL.iter().enumerate() {
        write("fiql", &format!("query-{i}"), q.as_bytes());
    }

    // config
    write("config", "settings-toml", SETTINGS_TOML.as_bytes());
    let settings =
        orb_engine::settings::TenantSettings::from_toml(SETTINGS_TOML).expect("the seed settings load");
    write("config", "settings-json", settings.to_json().as_bytes());

    // ews_xml: the reference answers
    let ews = root.join("../testdata/ews");
    let mut names: Vec<_> =
        std::fs::read_dir(&ews).expect("testdata/ews").map(|e| e.expect("entry").path()).collect();
    names.sort();
    for path in names {
        let name = path.file_stem().and_then(|s| s.to_str()).expect("a file name").to_owned();
        write("ews_xml", &name, &read(path));
    }
    println!("seed corpus written to {}", corpus.display());
}

const BASIC_NOTIFICATION: &str = r##"{"value":[{"subscriptionId":"00000000-0000-0000-0000-000000000001","clientState":"synthetic-client-state","changeType":"updated","resource":"Users/room1@contoso.com/Events/AAMkAD=","subscriptionExpirationDateTime":"2026-07-03T12:00:00.0000000+00:00","resourceData":{"@odata.type":"#Microsoft.Graph.Event","@odata.id":"Users/room1@contoso.com/Events/AAMkAD=","@odata.etag":"W/\"DwAAABYAAAA\"","id":"AAMkAD="},"tenantId":"8afd02d6-ebdd-4270-a515-c749898ea5c5"},{"subscriptionId":"unknown","clientState":"x","changeType":"deleted","resource":"Users/x/Events/y"}]}"##;

const LIFECYCLE_NOTIFICATION: &str = r##"{"value":[{"subscriptionId":"00000000-0000-0000-0000-000000000001","subscriptionExpirationDateTime":"2026-07-01T18:00:00.0000000+00:00","tenantId":"8afd02d6-ebdd-4270-a515-c749898ea5c5","clientState":"synthetic-client-state","lifecycleEvent":"reauthorizationRequired"}]}"##;

const GRAPH_EVENT: &str = r##"{"@odata.etag":"W/\"DwAAABYAAAA\"","id":"AAMkAD=","createdDateTime":"2026-06-30T08:00:00.1234567Z","lastModifiedDateTime":"2026-06-30T09:00:00.7654321Z","changeKey":"DwAAABYAAAA","iCalUId":"040000008200E00074C5B7101A82E008","subject":"Planning","isCancelled":false,"isOrganizer":true,"type":"singleInstance","showAs":"busy","start":{"dateTime":"2026-07-02T09:00:00.0000000","timeZone":"W. Europe Standard Time"},"end":{"dateTime":"2026-07-02T10:00:00.0000000","timeZone":"W. Europe Standard Time"},"location":{"displayName":"Room 1","locationType":"conferenceRoom","uniqueId":"room1@contoso.com","uniqueIdType":"directory","address":{"street":"Main 1","city":"Amsterdam","countryOrRegion":"NL"},"coordinates":{"latitude":52.37,"longitude":4.89}},"locations":[{"displayName":"Room 1","locationEmailAddress":"room1@contoso.com"}],"attendees":[{"type":"resource","status":{"response":"accepted","time":"2026-06-30T09:00:00Z"},"emailAddress":{"name":"Room 1","address":"room1@contoso.com"}},{"type":"required","status":{"response":"none","time":"0001-01-01T00:00:00Z"},"emailAddress":{"name":"Ann","address":"ann@contoso.com"}}],"organizer":{"emailAddress":{"name":"Bob","address":"bob@contoso.com"}},"body":{"contentType":"html","content":"<p>hi</p>"},"singleValueExtendedProperties":[{"id":"String {66f5a359-4659-4830-9070-00047ec6ac6e} Name orb-match-id","value":"01890a5d-ac96-774b-bcce-b302099a8057"}]}"##;

const GRAPH_SERIES_MASTER: &str = r##"{"id":"AAMkSM=","type":"seriesMaster","subject":"Weekly","start":{"dateTime":"2026-07-06T09:00:00.0000000","timeZone":"UTC"},"end":{"dateTime":"2026-07-06T09:30:00.0000000","timeZone":"UTC"},"recurrence":{"pattern":{"type":"relativeMonthly","interval":1,"month":0,"dayOfMonth":0,"daysOfWeek":["monday","thursday"],"firstDayOfWeek":"sunday","index":"last"},"range":{"type":"numbered","startDate":"2026-07-06","endDate":"0001-01-01","recurrenceTimeZone":"Europe/Amsterdam","numberOfOccurrences":10}}}"##;

const GRAPH_DELTA_PAGE: &str = r##"{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#Collection(event)","value":[{"id":"AAMkAD=","subject":"x","start":{"dateTime":"2026-07-02T09:00:00","timeZone":"UTC"},"end":{"dateTime":"2026-07-02T10:00:00","timeZone":"UTC"}},{"@removed":{"reason":"deleted"},"id":"AAMkGone="}],"@odata.deltaLink":"https://graph.microsoft.com/v1.0/users/room1/calendarView/delta?$deltatoken=abc"}"##;

const GRAPH_ROOMS: &str = r##"{"value":[{"@odata.type":"#microsoft.graph.room","id":"3162F1E1-C4C0-604B-51D8-91DA78989EB1","emailAddress":"room1@contoso.com","displayName":"Room 1","capacity":"50","building":"A","floorNumber":2,"isWheelChairAccessible":true,"bookingType":"standard","tags":["video"],"geoCoordinates":{"latitude":52.1,"longitude":4.2}}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/places/microsoft.graph.room?$skip=1"}"##;

const GRAPH_SUBSCRIPTION: &str = r##"{"id":"7f105c7d-2dc5-4530-97cd-4e7ae6534c07","resource":"users/room1@contoso.com/events","changeType":"created,updated,deleted","clientState":"secret","notificationUrl":"https://orb.example/hooks/graph/t1","lifecycleNotificationUrl":"https://orb.example/hooks/graph/t1/lifecycle","expirationDateTime":"2026-07-03T11:00:00.0000000Z","includeResourceData":true,"encryptionCertificate":"MIIB","encryptionCertificateId":"enc-20260101-4b95353e","latestSupportedTlsVersion":"v1_2"}"##;

const GRAPH_ERROR: &str = r##"{"error":{"code":"ErrorItemNotFound","message":"The specified object was not found in the store.","innerError":{"date":"2026-07-01T12:00:00","request-id":"94fb3b52-452a-4535-a601-69e0a90e3aa2","client-request-id":"94fb3b52-452a-4535-a601-69e0a90e3aa2"}}}"##;

const GRAPH_TOKEN: &str = r##"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAiOiJKV1QifQ.e30.c2ln"}"##;

const GRAPH_BATCH: &str = r##"{"responses":[{"id":"1","status":200,"headers":{"ETag":"W/\"x\""},"body":{"id":"AAMkAD=","subject":"x"}},{"id":"2","status":429,"headers":{"Retry-After":"3"},"body":{"error":{"code":"TooManyRequests","message":"slow down"}}}]}"##;

const TOPDESK_RESERVATION: &str = r##"{"id":"3a8b0c5e-7f0e-4d58-9d1b-b2a7e4f0c001","status":"planned","number":"R2607 001","briefDescription":"Planning","archived":false,"plannedStartDate":"2026-07-02T07:00:00.000Z","plannedEndDate":"2026-07-02T08:00:00.000+0000","modificationDate":"2026-06-30T09:00:00.123456Z","requester":{"id":"6c1d6c6f-2a44-4f21-9c1e-6a1f2b3c4d5e","name":"Bob","email":"bob@contoso.com","branch":{"id":"5d5d5d5d-0000-0000-0000-0000000000b1","name":"HQ"}},"operator":{"id":"1a2b3c4d-0000-0000-0000-000000000001","name":"orb-api"},"numberOfPersons":4,"participants":{"persons":[{"id":"6c1d6c6f-2a44-4f21-9c1e-6a1f2b3c4d5e","name":"Bob"}],"visitors":[]},"reservedFacilities":[{"id":"00000000-0000-0000-0000-0000000000a1","plannedStartDate":"2026-07-02T07:00:00Z","plannedEndDate":"2026-07-02T08:00:00Z","startDateBlock":"2015-11-15T14:00:00.000+0200","endDateBlock":"2026-07-02T08:15","location":{"id":"9f8e7d6c-0000-0000-0000-000000000002","name":"Room 1","roomNumber":"1.01"}}],"series":{"id":"5d5d5d5d-0000-0000-0000-000000000003"},"externalLinks":[{"id":"01890a5d-ac96-774b-bcce-b302099a8057","type":"7","date":"2026-06-30T09:00:00Z"}],"optionalFields1":{"text1":"x","number1":1.5,"boolean1":true}}"##;

const TOPDESK_PERSONS: &str = r##"{"item":[{"id":"6c1d6c6f-2a44-4f21-9c1e-6a1f2b3c4d5e","firstName":"Bob","surName":"B","dynamicName":"Bob B","email":"bob@contoso.com","networkLoginName":"bob","archived":false,"branch":{"id":"5d5d5d5d-0000-0000-0000-000000000009","name":"HQ"}}],"size":1}"##;

const TOPDESK_LOCATIONS: &str = r##"{"results":[{"id":"9f8e7d6c-0000-0000-0000-000000000002","name":"Room 1","roomNumber":"1.01","branch":{"id":"5d5d5d5d-0000-0000-0000-0000000000b1","name":"HQ"}}]}"##;

const TOPDESK_ERROR: &str = r##"[{"errorCode":"reservation.location.unavailable","appliesTo":["reservedFacilities"],"errorMessage":"The location is not available in this period"}]"##;

const FIQL: [&str; 8] = [
    "plannedStartDate=ge=2026-07-01T00:00:00Z;plannedEndDate=lt=2026-08-01T00:00:00Z",
    "status=in=(CONFIRMED,REQUESTED),status==null",
    "externalLinks.id==01890a5d-ac96-774b-bcce-b302099a8057;externalLinks.type==7",
    "description=sw=Plan*",
    "location.id=out=(a,b,c);(archived==false,archived==null)",
    "name=='Room \\'1\\'';number!=\"x y\"",
    "modificationDate=gt=2026-06-30T09:00:00Z",
    "(a==1;b==2),(c==3;(d==4,e==5))",
];

const SETTINGS_TOML: &str = r##"[graph]
tenant_id = "7d2a5c1e-0b9f-4c1a-9f77-3e1f2a4b5c6d"
client_id = "0f3b6a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
mail_sender = "orb@contoso.com"
cloud = "global"

[topdesk]
url = "https://contoso.topdesk.net"
username = "orb-api"
link_type = 7

[sync]
mode = "organizer"
subject = "keep"
time_zone = "Europe/Amsterdam"

[retention]
jobs_hours = 24
bookings_days = 90
audit_days = 400
"##;
