//! `$select` on event reads, as Graph applies it.
//!
//! - Without `$select`, Graph returns every property of an event, `body` and `bodyPreview` included (an
//!   event without a body has an empty HTML one). The emulator does the same, so a client that forgets to
//!   name its fields is caught by a test reading the emulator's request log or the answer.
//! - With `$select`, only the named properties are returned, plus `id` and `@odata.etag` (always), and the
//!   extended properties a `$expand` asked for.
//! - On `calendarView`, `createdDateTime` and `lastModifiedDateTime` cannot be selected (reference §6.5):
//!   named in `$select`, they are left out of the answer.

use std::collections::HashMap;

use orb_graph::model::Event;
use serde_json::{Map, Value};

/// The properties a request's `$select` names (`None`: no `$select`, everything is returned).
pub fn requested(query: &HashMap<String, String>) -> Option<Vec<String>> {
    query.get("$select").map(|s| parse(s))
}

/// Splits a `$select` value into property names.
pub fn parse(value: &str) -> Vec<String> {
    value.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}

/// Which read shaped the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// `GET events/{id}`, `GET events`, `GET events/{id}/instances`.
    Events,
    /// `GET calendarView`: `createdDateTime` / `lastModifiedDateTime` cannot be selected.
    CalendarView,
}

/// Properties `calendarView` does not return under `$select`.
const NOT_SELECTABLE_ON_VIEW: [&str; 2] = ["createdDateTime", "lastModifiedDateTime"];

/// One event as the read returns it.
pub fn project(event: &Event, select: Option<&[String]>, read: Read) -> Value {
    let full = serde_json::to_value(event).unwrap_or_default();
    let Some(select) = select else { return full };
    let Value::Object(obj) = full else { return full };
    let keep = |k: &str| {
        if k == "id" || k == "@odata.etag" || k == "singleValueExtendedProperties" {
            return true;
        }
        if read == Read::CalendarView && NOT_SELECTABLE_ON_VIEW.iter().any(|n| n.eq_ignore_ascii_case(k)) {
            return false;
        }
        select.iter().any(|s| s.eq_ignore_ascii_case(k))
    };
    Value::Object(obj.into_iter().filter(|(k, _)| keep(k)).collect::<Map<_, _>>())
}

/// A page of events as the read returns them.
pub fn project_all(events: &[Event], select: Option<&[String]>, read: Read) -> Vec<Value> {
    events.iter().map(|e| project(e, select, read)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use orb_graph::model::{BodyType, ItemBody};

    fn event() -> Event {
        Event {
            id: Some("AAMk1".into()),
            odata_etag: Some("W/\"x\"".into()),
            subject: Some("Board".into()),
            body: Some(ItemBody {
                content_type: Some(BodyType::Html),
                content: Some("<p>secret</p>".into()),
            }),
            body_preview: Some("secret".into()),
            last_modified_date_time: Some(chrono::Utc::now()),
            ..Event::default()
        }
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn without_select_the_body_comes_back() {
        let v = project(&event(), None, Read::Events);
        assert_eq!(v["body"]["content"], "<p>secret</p>");
        assert_eq!(v["bodyPreview"], "secret");
    }

    #[test]
    fn select_keeps_the_named_properties_id_and_etag() {
        let select = parse("subject, lastModifiedDateTime");
        assert_eq!(
            keys(&project(&event(), Some(&select), Read::Events)),
            ["@odata.etag", "id", "lastModifiedDateTime", "subject"]
        );
        assert_eq!(
            keys(&project(&event(), Some(&select), Read::CalendarView)),
            ["@odata.etag", "id", "subject"]
        );
    }
}
