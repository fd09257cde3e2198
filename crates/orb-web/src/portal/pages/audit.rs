//! The audit log the customer reads: every login and failed login, every view of a booking's detail, every
//! setting change, retry, dismissal and approval — who, when, from which address; filtered by actor, action
//! and dates; exported as CSV or JSON (the export is itself audited).

use askama::Template;
use axum::extract::Query;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use orb_store::{AuditEntry, AuditFilter};
use serde::{Deserialize, Serialize};

use super::{Layout, render};
use crate::portal::error::PortalError;
use crate::portal::scope::Scope;
use crate::portal::view::{day_bound, when};

/// The audit page's filters.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct AuditQuery {
    /// Actor (exact e-mail address, `cli`, `system`, ...).
    #[serde(default)]
    pub actor: Option<String>,
    /// Action prefix (`login`, `settings.`, ...).
    #[serde(default)]
    pub action: Option<String>,
    /// First day (YYYY-MM-DD), in the tenant's zone (the installation's log: UTC).
    #[serde(default)]
    pub from: Option<String>,
    /// Last day (YYYY-MM-DD), in the tenant's zone (the installation's log: UTC).
    #[serde(default)]
    pub to: Option<String>,
    /// Export format: `csv` or `json`.
    #[serde(default)]
    pub format: Option<String>,
    /// The installation's page only: one tenant (by name); empty or absent: every tenant and the rows of
    /// none.
    #[serde(default)]
    pub tenant: Option<String>,
}

impl AuditQuery {
    /// The store filter; `limit` rows at most; the days are days in `zone` (the tenant's; the installation's
    /// log: UTC).
    pub fn filter(&self, limit: u32, zone: chrono_tz::Tz) -> Result<AuditFilter, PortalError> {
        let date = |text: &Option<String>, end| {
            day_bound(text.as_deref(), zone, end).map_err(PortalError::BadRequest)
        };
        let text =
            |v: &Option<String>| v.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
        Ok(AuditFilter {
            actor: text(&self.actor),
            action_prefix: text(&self.action),
            since: date(&self.from, false)?,
            until: date(&self.to, true)?,
            limit,
        })
    }
}

/// An audit row as shown and exported.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    /// Sequence number.
    pub id: i64,
    /// When (`YYYY-MM-DD HH:MM:SS`; the page shows the tenant's zone, exports and the API UTC).
    pub at: String,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// From where.
    pub ip: String,
}

/// Rows as shown, their times in `zone` (exports and the API: UTC).
pub fn rows(entries: &[AuditEntry], zone: chrono_tz::Tz) -> Vec<AuditRow> {
    entries
        .iter()
        .map(|e| AuditRow {
            id: e.id,
            at: when(e.at, zone),
            actor: e.actor.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            ip: e.ip.clone().unwrap_or_default(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    q: AuditQuery,
    rows: Vec<AuditRow>,
    /// The zone the rows' times are in (the tenant's).
    zone: String,
    export_query: String,
}

/// `GET /t/{tenant}/audit`.
pub async fn page(scope: Scope, Query(q): Query<AuditQuery>) -> Result<Response, PortalError> {
    let zone = scope.policy().await?.zone;
    let entries = scope.audit_log(&q.filter(500, zone)?).await?;
    let export_query = serde_urlencoded_query(&q);
    let layout = Layout::of(&scope, "audit", None);
    let rows = rows(&entries, zone);
    Ok(render(&AuditPage { layout, q, rows, zone: zone.name().to_owned(), export_query })?.into_response())
}

/// The filters as a query string (for the export links).
pub fn serde_urlencoded_query(q: &AuditQuery) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    let pairs =
        [("actor", &q.actor), ("action", &q.action), ("from", &q.from), ("to", &q.to), ("tenant", &q.tenant)];
    for (k, v) in pairs {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            ser.append_pair(k, v);
        }
    }
    ser.finish()
}

/// One CSV field, quoted when needed; a leading `=`, `+`, `-` or `@` is neutralised (spreadsheet formulas).
pub fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

/// The rows as CSV with a header line.
pub fn to_csv(rows: &[AuditRow]) -> String {
    let mut out = String::from("id,at,actor,action,target,ip\n");
    for r in rows {
        let line = [
            r.id.to_string(),
            r.at.clone(),
            r.actor.clone(),
            r.action.clone(),
            r.target.clone(),
            r.ip.clone(),
        ]
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `GET /t/{tenant}/audit/export?format=csv|json`.
pub async fn export(scope: Scope, Query(q): Query<AuditQuery>) -> Result<Response, PortalError> {
    let format = export_format(&q)?;
    // The same rows as the page it is linked from: days in the tenant's zone (the rows' times in UTC).
    let zone = scope.policy().await?.zone;
    let entries = scope.audit_log(&q.filter(100_000, zone)?).await?;
    scope.record("audit.export", format!("{format}, {} rows", entries.len())).await?;
    let rows = rows(&entries, chrono_tz::UTC);
    let body =
        if format == "csv" { to_csv(&rows) } else { serde_json::to_string_pretty(&rows).unwrap_or_default() };
    Ok(download(&format!("orb-audit-{}", scope.tenant.name), &format, body))
}

/// `format` (`csv` or `json`, checked by the caller) given as the attachment `{stem}.{format}`.
pub fn download(stem: &str, format: &str, body: String) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{stem}.{format}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    let content_type = if format == "csv" { "text/csv; charset=utf-8" } else { "application/json" };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// The export format asked for: `csv` (the default) or `json`.
pub fn export_format(q: &AuditQuery) -> Result<String, PortalError> {
    let format = q.format.clone().unwrap_or_else(|| "csv".into());
    if format != "csv" && format != "json" {
        return Err(PortalError::BadRequest(format!("format {format:?}: use csv or json")));
    }
    Ok(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_filter_s_days_are_days_in_the_given_zone() {
        let q = AuditQuery {
            actor: Some(" cli ".into()),
            action: Some(String::new()),
            from: Some("2026-12-01".into()),
            to: Some("2026-12-01".into()),
            ..AuditQuery::default()
        };
        let at = |t: &str| Some(t.parse::<chrono::DateTime<chrono::Utc>>().unwrap());
        let f = q.filter(10, chrono_tz::Europe::Amsterdam).unwrap();
        assert_eq!((f.actor.as_deref(), f.action_prefix, f.limit), (Some("cli"), None, 10));
        assert_eq!((f.since, f.until), (at("2026-11-30T23:00:00Z"), at("2026-12-01T23:00:00Z")));
        let f = q.filter(10, chrono_tz::UTC).unwrap();
        assert_eq!((f.since, f.until), (at("2026-12-01T00:00:00Z"), at("2026-12-02T00:00:00Z")));
        let bad = AuditQuery { to: Some("tomorrow".into()), ..AuditQuery::default() };
        let err = bad.filter(10, chrono_tz::UTC).unwrap_err().to_string();
        assert!(err.contains("\"tomorrow\" is not a date; write YYYY-MM-DD"), "{err}");
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        let check = |input: &str, expected: &str| assert_eq!(csv_field(input), expected, "{input}");
        check("plain", "plain");
        check("a,b", "\"a,b\"");
        check("say \"hi\"", "\"say \"\"hi\"\"\"");
        check("=cmd()", "'=cmd()");
        check("-1+1", "'-1+1");
        check("line\nbreak", "\"line\nbreak\"");
    }
}
