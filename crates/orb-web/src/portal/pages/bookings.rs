//! Bookings: a searchable list (room, organizer, dates, failed only, cancelled too) and the detail page,
//! "explain this booking": every field of the ORB record and its timeline — each observation, decision,
//! write, answer and error, with its correlation id and side. Fields a tenant-admin hid show as hidden for
//! everyone, in the timeline's details too. Each view of a detail leaves one audit row (`booking.view`).

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use chrono_tz::Tz;
use orb_core::{BookingId, EmailAddress, RoomId};
use orb_store::{BookingEvent, BookingFilter};
use serde::Deserialize;

use super::{Layout, render};
use crate::portal::error::PortalError;
use crate::portal::scope::Scope;
use crate::portal::view::{BookingView, HIDDEN, when};

/// Page size of the list.
pub const PAGE: u32 = 50;

/// The answer to an organizer filter where the tenant hides the organizer.
pub const HIDDEN_ORGANIZER: &str =
    "the organizer is hidden in this tenant, so bookings cannot be searched by organizer; clear that filter";

/// The list's filters, as query parameters.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct BookingQuery {
    /// Room id.
    #[serde(default)]
    pub room: Option<String>,
    /// Organizer's e-mail address.
    #[serde(default)]
    pub organizer: Option<String>,
    /// First day (YYYY-MM-DD), in the tenant's zone.
    #[serde(default)]
    pub from: Option<String>,
    /// Last day (YYYY-MM-DD), in the tenant's zone.
    #[serde(default)]
    pub to: Option<String>,
    /// `failed`: only bookings with a failure.
    #[serde(default)]
    pub status: Option<String>,
    /// `1`/`on`: cancelled bookings too.
    #[serde(default)]
    pub cancelled: Option<String>,
    /// Page number, from 0.
    #[serde(default)]
    pub page: Option<u32>,
}

fn day(text: Option<&str>, zone: Tz, end: bool) -> Result<Option<chrono::DateTime<Utc>>, PortalError> {
    crate::portal::view::day_bound(text, zone, end).map_err(PortalError::BadRequest)
}

impl BookingQuery {
    /// The query string of page `page` of this search: every filter given, URL-encoded, then the page
    /// (for the pager's links, so a page turn keeps the filters).
    pub fn page_query(&self, page: u32) -> String {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("room", &self.room),
            ("organizer", &self.organizer),
            ("from", &self.from),
            ("to", &self.to),
            ("status", &self.status),
            ("cancelled", &self.cancelled),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                out.append_pair(name, value);
            }
        }
        out.append_pair("page", &page.to_string());
        out.finish()
    }

    /// The store filter these parameters mean; bad input is a clear error, and so is a filter on a field
    /// the tenant hides (searching by it would tell what the list hides).
    pub fn filter(&self, zone: Tz, hidden: &BTreeSet<String>) -> Result<BookingFilter, PortalError> {
        let nonempty =
            |v: &Option<String>| v.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
        if hidden.contains("organizer") && nonempty(&self.organizer).is_some() {
            return Err(PortalError::BadRequest(HIDDEN_ORGANIZER.into()));
        }
        let room = nonempty(&self.room)
            .map(|r| {
                r.parse::<RoomId>().map_err(|_| PortalError::BadRequest(format!("{r:?} is not a room id")))
            })
            .transpose()?;
        let organizer = nonempty(&self.organizer)
            .map(|o| {
                EmailAddress::parse(&o)
                    .map_err(|_| PortalError::BadRequest(format!("{o:?} is not an e-mail address")))
            })
            .transpose()?;
        let failed_only = match nonempty(&self.status).as_deref() {
            None | Some("all") => false,
            Some("failed") => true,
            Some(other) => {
                return Err(PortalError::BadRequest(format!("status {other:?}: use \"all\" or \"failed\"")));
            }
        };
        Ok(BookingFilter {
            room,
            organizer,
            failed_only,
            from: day(self.from.as_deref(), zone, false)?,
            to: day(self.to.as_deref(), zone, true)?,
            include_cancelled: matches!(nonempty(&self.cancelled).as_deref(), Some("1" | "on" | "true")),
            limit: Some(PAGE),
            offset: self.page.unwrap_or(0).saturating_mul(PAGE),
            ..BookingFilter::default()
        })
    }
}

/// Room id → mailbox, for showing.
pub async fn room_names(scope: &Scope) -> Result<BTreeMap<String, String>, PortalError> {
    Ok(scope.rooms().await?.into_iter().map(|r| (r.id.to_string(), r.mailbox.to_string())).collect())
}

/// The bookings a query finds, as views.
pub async fn search(scope: &Scope, q: &BookingQuery) -> Result<Vec<BookingView>, PortalError> {
    let policy = scope.policy().await?;
    let rooms = room_names(scope).await?;
    let filter = q.filter(policy.zone, &policy.hidden_fields)?;
    Ok(scope
        .bookings(&filter)
        .await?
        .iter()
        .map(|b| BookingView::new(b, &rooms, &policy.hidden_fields, policy.zone))
        .collect())
}

#[derive(Template)]
#[template(path = "bookings.html")]
struct BookingsPage {
    layout: Layout,
    q: BookingQuery,
    /// The tenant hides the organizer: no organizer filter.
    organizer_hidden: bool,
    rooms: Vec<(String, String)>,
    results: BookingResults,
}

/// The list's table and pager: part of the page, and what an htmx filter change swaps in (so the pager's
/// links follow the filters).
#[derive(Template)]
#[template(path = "bookings_rows.html")]
struct BookingResults {
    tenant: String,
    bookings: Vec<BookingView>,
    columns: Vec<&'static str>,
    /// The previous page's link, on pages after the first.
    previous: Option<String>,
    /// The next page's link, when this page is full.
    next: Option<String>,
}

/// The list's columns (the detail page has every field).
const COLUMNS: [&str; 7] =
    ["start", "end", "room", "organizer", "subject", "exchange_status", "topdesk_status"];

/// `GET /t/{tenant}/bookings` (an htmx request gets only the table and the pager).
pub async fn list(
    scope: Scope,
    headers: HeaderMap,
    Query(q): Query<BookingQuery>,
) -> Result<Response, PortalError> {
    let bookings = search(&scope, &q).await?;
    let tenant = scope.tenant.name.to_string();
    let page = q.page.unwrap_or(0);
    let link = |page: u32| format!("/t/{tenant}/bookings?{}", q.page_query(page));
    let previous = page.checked_sub(1).map(link);
    let next = (bookings.len() == PAGE as usize).then(|| link(page + 1));
    let results =
        BookingResults { tenant: tenant.clone(), bookings, columns: COLUMNS.to_vec(), previous, next };
    if headers.contains_key("hx-request") {
        return Ok(render(&results)?.into_response());
    }
    let rooms = room_names(&scope).await?.into_iter().collect();
    let layout = Layout::of(&scope, "bookings", None);
    let organizer_hidden = scope.policy().await?.hidden_fields.contains("organizer");
    Ok(render(&BookingsPage { layout, q, organizer_hidden, rooms, results })?.into_response())
}

/// One timeline entry as shown.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    /// When.
    pub at: String,
    /// What happened (`observed`, `planned`, `write`, `answer`, `error`, ...).
    pub kind: String,
    /// Which side.
    pub side: String,
    /// The correlation id of the work.
    pub correlation_id: String,
    /// Details (JSON, hidden fields removed).
    pub detail: String,
}

/// Timeline detail keys that carry a booking field, by field key.
const DETAIL_KEYS: &[(&str, &[&str])] = &[
    ("subject", &["subject"]),
    ("organizer", &["organizer"]),
    ("original_organizer", &["original_organizer"]),
    ("booked_by", &["booked_by"]),
    ("participants", &["participants", "attendees"]),
    ("location", &["location", "location_text"]),
];

fn redact(value: &mut serde_json::Value, keys: &BTreeSet<&str>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if keys.contains(k.as_str()) {
                    *v = serde_json::Value::String(HIDDEN.to_owned());
                } else {
                    redact(v, keys);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| redact(v, keys)),
        _ => {}
    }
}

/// A timeline as shown, with hidden fields removed from the details.
pub fn timeline_view(events: &[BookingEvent], hidden: &BTreeSet<String>, zone: Tz) -> Vec<TimelineEntry> {
    let keys: BTreeSet<&str> = DETAIL_KEYS
        .iter()
        .filter(|(field, _)| hidden.contains(*field))
        .flat_map(|(_, keys)| keys.iter().copied())
        .collect();
    events
        .iter()
        .map(|e| {
            let mut detail = e.detail.clone();
            redact(&mut detail, &keys);
            TimelineEntry {
                at: when(e.at, zone),
                kind: e.kind.clone(),
                side: e.side.map(|s| s.as_str().to_owned()).unwrap_or_default(),
                correlation_id: e.correlation_id.to_string(),
                detail: if detail.is_null() { String::new() } else { detail.to_string() },
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "booking.html")]
struct BookingPage {
    layout: Layout,
    booking: BookingView,
    timeline: Vec<TimelineEntry>,
}

/// Parses a booking id from the URL (404 when it is none).
pub fn booking_id(text: &str) -> Result<BookingId, PortalError> {
    text.parse().map_err(|_| PortalError::NotFound)
}

/// A booking and its timeline as shown, with its audit row (`booking.view`).
pub async fn explain(scope: &Scope, id: BookingId) -> Result<(BookingView, Vec<TimelineEntry>), PortalError> {
    let policy = scope.policy().await?;
    let (record, events) = scope.booking(id).await?;
    let rooms = room_names(scope).await?;
    scope.record("booking.view", id.to_string()).await?;
    Ok((
        BookingView::new(&record, &rooms, &policy.hidden_fields, policy.zone),
        timeline_view(&events, &policy.hidden_fields, policy.zone),
    ))
}

/// `GET /t/{tenant}/bookings/{id}`.
pub async fn detail(scope: Scope, Path((_, id)): Path<(String, String)>) -> Result<Response, PortalError> {
    let (booking, timeline) = explain(&scope, booking_id(&id)?).await?;
    let layout = Layout::of(&scope, "bookings", None);
    Ok(render(&BookingPage { layout, booking, timeline })?.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hidden_fields_are_removed_from_timeline_details_at_any_depth() {
        let mut value = json!({"subject": "Board", "write": {"subject": "Board", "start": "x"},
                               "list": [{"organizer": "a@b.c"}]});
        let keys: BTreeSet<&str> = ["subject", "organizer"].into_iter().collect();
        redact(&mut value, &keys);
        assert_eq!(
            value,
            json!({"subject": HIDDEN, "write": {"subject": HIDDEN, "start": "x"}, "list": [{"organizer": HIDDEN}]})
        );
    }

    #[test]
    fn bad_filters_are_clear_errors() {
        let check = |q: BookingQuery, expected: &str| {
            let err = q.filter(chrono_tz::UTC, &BTreeSet::new()).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        };
        check(BookingQuery { from: Some("5 May".into()), ..Default::default() }, "write YYYY-MM-DD");
        check(BookingQuery { organizer: Some("nobody".into()), ..Default::default() }, "not an e-mail");
        check(BookingQuery { status: Some("odd".into()), ..Default::default() }, "use \"all\" or \"failed\"");
        check(BookingQuery { room: Some("x".into()), ..Default::default() }, "not a room id");
    }

    #[test]
    fn a_filter_on_a_hidden_organizer_is_refused_and_other_filters_still_work() {
        let hidden: BTreeSet<String> = ["organizer".to_owned()].into_iter().collect();
        let by_organizer = BookingQuery { organizer: Some("a@b.example".into()), ..Default::default() };
        let err = by_organizer.filter(chrono_tz::UTC, &hidden).unwrap_err().to_string();
        assert_eq!(err, HIDDEN_ORGANIZER);
        assert!(by_organizer.filter(chrono_tz::UTC, &BTreeSet::new()).unwrap().organizer.is_some());
        let blank =
            BookingQuery { organizer: Some(" ".into()), status: Some("failed".into()), ..Default::default() };
        assert!(blank.filter(chrono_tz::UTC, &hidden).unwrap().failed_only, "an empty field is no filter");
    }

    #[test]
    fn a_page_link_keeps_every_filter_url_encoded() {
        let q = BookingQuery {
            organizer: Some("a+b&c@x.example".into()),
            from: Some("2026-12-01".into()),
            to: Some(String::new()),
            status: Some("failed".into()),
            cancelled: Some("1".into()),
            page: Some(3),
            ..Default::default()
        };
        assert_eq!(
            q.page_query(4),
            "organizer=a%2Bb%26c%40x.example&from=2026-12-01&status=failed&cancelled=1&page=4"
        );
        assert_eq!(BookingQuery::default().page_query(0), "page=0");
    }

    #[test]
    fn a_day_range_covers_the_last_day_in_the_tenant_zone() {
        let q = BookingQuery {
            from: Some("2026-12-01".into()),
            to: Some("2026-12-01".into()),
            ..Default::default()
        };
        let f = q.filter(chrono_tz::Europe::Amsterdam, &BTreeSet::new()).unwrap();
        assert_eq!(f.from.unwrap().to_rfc3339(), "2026-11-30T23:00:00+00:00");
        assert_eq!(f.to.unwrap().to_rfc3339(), "2026-12-01T23:00:00+00:00");
        assert_eq!(f.limit, Some(PAGE));
    }
}
