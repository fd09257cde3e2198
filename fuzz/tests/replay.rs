//! Replays the committed seed corpus and every regression input through the fuzz checks, without
//! libFuzzer: `cargo test` in `fuzz/` (and `fuzz/run.sh`) proves that no input once found to crash does so
//! again.

use std::path::Path;

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 6] = [
    ("graph_notification", orb_fuzz::graph_notification),
    ("graph_models", orb_fuzz::graph_models),
    ("topdesk_models", orb_fuzz::topdesk_models),
    ("fiql", orb_fuzz::fiql),
    ("config", orb_fuzz::config),
    ("ews_xml", orb_fuzz::ews_xml),
];

fn replay(folder: &str, require: bool) -> usize {
    let mut n = 0;
    for (target, check) in TARGETS {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            assert!(!require, "{} is missing", dir.display());
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable directory entry").path();
            let data = std::fs::read(&path).expect("a readable input");
            eprintln!("{target}: {}", path.display());
            check(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn every_seed_passes_its_check() {
    assert!(replay("corpus", true) >= TARGETS.len(), "every target has at least one seed");
}

#[test]
fn every_regression_input_passes_its_check() {
    replay("regressions", false);
}

/// The seeds start the fuzzer deep in each parser: a seed that silently stopped parsing would leave a
/// target fuzzing only the first step.
#[test]
fn the_seeds_reach_past_the_first_parse() {
    use orb_graph::notifications::{check_validation_tokens, decrypt_event, parse_notification_collection};
    let seed = |target: &str, name: &str| {
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target).join(name))
            .expect("a committed seed")
    };

    // The signed rich POST: its token validates at NOW, its item decrypts to Microsoft's vector.
    let signed = seed("graph_notification", "signed-rich-collection");
    assert_eq!(signed[0], 0, "envelope mode");
    let collection = parse_notification_collection(&signed[1..]).expect("the signed seed parses");
    let fx = &*orb_fuzz::GRAPH;
    let valid = check_validation_tokens(&collection, &fx.jwks, &fx.expectations, *orb_fuzz::NOW)
        .expect("the signed seed's token validates");
    assert_eq!(valid.len(), 1);
    assert!(decrypt_event(&collection.value[0], &fx.ring).expect("the vector decrypts").is_some());

    // Graph and TOPdesk JSON seeds are the types they are named after.
    let event: orb_graph::model::Event =
        serde_json::from_slice(&seed("graph_models", "event")).expect("event");
    assert!(event.start.expect("a start").to_utc().is_ok());
    let master: orb_graph::model::Event =
        serde_json::from_slice(&seed("graph_models", "event-series-master")).expect("series master");
    assert!(master.recurrence.expect("a recurrence").to_core().is_ok());
    let reservation: orb_topdesk::wire::ReservationDto =
        serde_json::from_slice(&seed("topdesk_models", "reservation")).expect("reservation");
    assert!(reservation.modification_date.is_some());
    assert!(reservation.reserved_facilities.is_some_and(|f| f[0].location.is_some()));
    let list: orb_topdesk::wire::ReservationList =
        serde_json::from_slice(&seed("topdesk_models", "reservation-list")).expect("reservation list");
    assert_eq!(list.results.len(), 1);
    let persons: orb_topdesk::wire::ListOfPersonsV2 =
        serde_json::from_slice(&seed("topdesk_models", "persons")).expect("persons");
    assert_eq!(persons.item.len(), 1);
    let locations: orb_topdesk::wire::ReservableLocationList =
        serde_json::from_slice(&seed("topdesk_models", "locations")).expect("locations");
    assert_eq!(locations.results.len(), 1);
    let error = String::from_utf8(seed("topdesk_models", "error-body")).expect("UTF-8");
    assert_eq!(orb_topdesk::parse_error_body(&error).1, ["reservation.location.unavailable"]);

    // FIQL seeds parse; the settings seeds load.
    for i in 0..8 {
        let text = String::from_utf8(seed("fiql", &format!("query-{i}"))).expect("UTF-8");
        assert!(orb_topdesk::Fiql::parse(&text).is_ok(), "{text}");
    }
    let toml = String::from_utf8(seed("config", "settings-toml")).expect("UTF-8");
    assert!(orb_engine::settings::TenantSettings::from_toml(&toml).is_ok());
    let json = String::from_utf8(seed("config", "settings-json")).expect("UTF-8");
    assert!(orb_engine::settings::TenantSettings::from_json(&json).is_ok());
}
