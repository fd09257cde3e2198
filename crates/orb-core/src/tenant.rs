//! Validated names used in configuration and room mappings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{CoreError, EmailAddress};

/// A tenant's short name: 1–63 characters of lower-case ASCII letters, digits and `-`, starting with a
/// letter. It appears in webhook URLs (`/hooks/graph/{tenant}`), so it must be URL-safe as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantName(String);

impl TenantName {
    /// Validates a tenant name.
    pub fn parse(input: &str) -> Result<Self, CoreError> {
        let err = |reason| CoreError::InvalidName { kind: "tenant name", input: input.to_owned(), reason };
        if input.is_empty() || input.len() > 63 {
            return Err(err("it must be 1 to 63 characters long"));
        }
        if !input.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(err("it must start with a lower-case letter"));
        }
        if !input.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(err("use only lower-case letters, digits and '-'"));
        }
        Ok(Self(input.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantName {
    type Error = CoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantName> for String {
    fn from(value: TenantName) -> Self {
        value.0
    }
}

impl FromStr for TenantName {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An Exchange room mailbox: its SMTP address is the stable key of a room on the Exchange side.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomMailbox(EmailAddress);

impl RoomMailbox {
    /// Parses a room mailbox address.
    pub fn parse(input: &str) -> Result<Self, CoreError> {
        EmailAddress::parse(input).map(Self)
    }

    /// The mailbox's address.
    pub fn address(&self) -> &EmailAddress {
        &self.0
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl From<EmailAddress> for RoomMailbox {
    fn from(value: EmailAddress) -> Self {
        Self(value)
    }
}

impl FromStr for RoomMailbox {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for RoomMailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The id of a TOPdesk room (a location or reservable asset): TOPdesk uses UUIDs, but ORB keeps the text as
/// TOPdesk gives it, trimmed, non-empty and at most 64 characters without whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TopdeskLocationId(String);

impl TopdeskLocationId {
    /// Validates a TOPdesk location id.
    pub fn parse(input: &str) -> Result<Self, CoreError> {
        let trimmed = input.trim();
        let err =
            |reason| CoreError::InvalidName { kind: "TOPdesk location id", input: input.to_owned(), reason };
        if trimmed.is_empty() || trimmed.len() > 64 {
            return Err(err("it must be 1 to 64 characters long"));
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("it must not contain spaces or control characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TopdeskLocationId {
    type Error = CoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TopdeskLocationId> for String {
    fn from(value: TopdeskLocationId) -> Self {
        value.0
    }
}

impl FromStr for TopdeskLocationId {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for TopdeskLocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IANA time zone name that chrono-tz knows (e.g. `Europe/Amsterdam`). The source zone of a booking is
/// kept next to its UTC instants so a booking can be shown and re-expanded in the zone it was made in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZoneName(String);

impl TimeZoneName {
    /// Validates a zone name against chrono-tz's database. Never falls back to UTC silently.
    pub fn parse(input: &str) -> Result<Self, CoreError> {
        let tz: chrono_tz::Tz =
            input.trim().parse().map_err(|_| CoreError::UnknownTimeZone { input: input.to_owned() })?;
        Ok(Self(tz.name().to_owned()))
    }

    /// UTC itself.
    pub fn utc() -> Self {
        Self("UTC".to_owned())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The chrono-tz zone.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.0.parse().unwrap_or(chrono_tz::UTC)
    }
}

impl TryFrom<String> for TimeZoneName {
    type Error = CoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TimeZoneName> for String {
    fn from(value: TimeZoneName) -> Self {
        value.0
    }
}

impl fmt::Display for TimeZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TimeZoneName {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names() {
        assert_eq!(TenantName::parse("contoso-nl").unwrap().as_str(), "contoso-nl");
        for bad in ["", "Contoso", "1contoso", "con toso", "con/toso"] {
            assert!(TenantName::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn time_zones_are_checked_never_defaulted() {
        assert_eq!(TimeZoneName::parse("Europe/Amsterdam").unwrap().as_str(), "Europe/Amsterdam");
        let err = TimeZoneName::parse("W. Europe Standard Time").unwrap_err();
        assert!(err.to_string().contains("unknown time zone"), "{err}");
    }

    #[test]
    fn topdesk_location_ids() {
        assert_eq!(TopdeskLocationId::parse(" 3fa85f64 ").unwrap().as_str(), "3fa85f64");
        assert!(TopdeskLocationId::parse("").is_err());
        assert!(TopdeskLocationId::parse("a b").is_err());
    }
}
