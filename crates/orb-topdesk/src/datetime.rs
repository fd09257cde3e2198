//! TOPdesk date-time text: how ORB writes it and every spelling it accepts when reading.
//!
//! TOPdesk's reservations API speaks UTC ISO 8601; the classic supporting-files endpoints use
//! `2015-11-15T14:00:00.000+0200` (offset without a colon). The exact text TOPdesk sends back for
//! reservations is not documented (reference §10 U3), so reading accepts RFC 3339 (`…Z`, `…+02:00`) and the
//! `%z` style (`…+0200`), with or without fractional seconds. Writing always uses UTC with `Z` and
//! milliseconds: `2025-03-10T09:00:00.000Z`.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// Formats an instant the way ORB sends it (and the emulator answers): UTC, milliseconds, `Z`.
pub fn format(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Formats an instant as the FIQL examples do: `yyyy-MM-ddTHH:mm:ssZ`.
pub fn format_fiql(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Formats an instant as an RFC 7232 IMF-fixdate (`Last-Modified`), second precision.
pub fn format_http(at: &DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Parses any TOPdesk spelling of a date-time (see the module docs). Text without an offset is UTC.
///
/// An instant outside the years 0000 to 9999 (UTC) is refused: [`format()`] would write it with a sign or a
/// fifth digit (`-0010-…`, `+10000-…`), which no spelling here reads back (found by fuzzing).
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    parse_any(text.trim()).filter(|at| (0..=9999).contains(&at.year()))
}

fn parse_any(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    for pattern in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z"] {
        if let Ok(at) = DateTime::parse_from_str(text, pattern) {
            return Some(at.with_timezone(&Utc));
        }
    }
    for pattern in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, pattern) {
            return Some(at.and_utc());
        }
    }
    None
}

/// Parses an HTTP date (`Last-Modified`, `Retry-After`).
pub fn parse_http(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(text.trim()).ok().map(|at| at.with_timezone(&Utc))
}

/// Parses a full date `yyyy-MM-dd`.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()
}

/// Serde helpers for `Option<DateTime<Utc>>` fields (absent and `null` both read as `None`; `None` is
/// skipped on write by the field's `skip_serializing_if`).
pub mod option {
    use super::*;

    /// Writes the instant in ORB's spelling.
    pub fn serialize<S: Serializer>(value: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(at) => serializer.serialize_str(&format(at)),
            None => serializer.serialize_none(),
        }
    }

    /// Reads any accepted spelling.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        let raw: Option<String> = Option::deserialize(deserializer)?;
        match raw {
            None => Ok(None),
            Some(text) => parse(&text)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("not a TOPdesk date-time: {text:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Option<&str>) {
        let got = parse(text).map(|at| format(&at));
        assert_eq!(got.as_deref(), expected, "input {text:?}");
    }

    #[test]
    fn reads_every_documented_spelling() {
        check("2025-03-10T09:00:00Z", Some("2025-03-10T09:00:00.000Z"));
        check("2019-06-20T09:41:02.019Z", Some("2019-06-20T09:41:02.019Z"));
        check("2015-11-15T14:00:00.000+0200", Some("2015-11-15T12:00:00.000Z"));
        check("2015-11-15T14:00:00+02:00", Some("2015-11-15T12:00:00.000Z"));
        check("2015-11-15T14:00:00.000+0000", Some("2015-11-15T14:00:00.000Z"));
        check("2015-11-15T14:00:00.000", Some("2015-11-15T14:00:00.000Z"));
        check("2015-11-15T14:00", Some("2015-11-15T14:00:00.000Z"));
        check("15-11-2015 14:00", None);
        check("", None);
    }

    /// Fuzzing regression (`fuzz/regressions/topdesk_models/`): chrono reads signed and long years, which
    /// `format` writes in a form nothing reads back. Only years 0000 to 9999 in UTC are dates.
    #[test]
    fn refuses_instants_it_could_not_write_back() {
        check("-010-11-15T14:00:0.000+0201", None);
        check("-0010-11-15T11:59:00.000Z", None);
        check("+10000-01-01T00:00:00.000", None);
        check("0000-01-01T00:30:00+01:00", None);
        check("9999-12-31T23:30:00-01:00", None);
        check("0000-01-01T00:00:00Z", Some("0000-01-01T00:00:00.000Z"));
        check("9999-12-31T23:59:59.999Z", Some("9999-12-31T23:59:59.999Z"));
    }

    #[test]
    fn http_dates_round_trip() {
        let at = parse("2025-03-04T10:15:00Z").unwrap();
        assert_eq!(format_http(&at), "Tue, 04 Mar 2025 10:15:00 GMT");
        assert_eq!(parse_http("Tue, 04 Mar 2025 10:15:00 GMT"), Some(at));
        assert_eq!(format_fiql(&at), "2025-03-04T10:15:00Z");
    }
}
