//! A validated, normalised e-mail address: the only personal data ORB keeps.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::CoreError;

/// An SMTP address in the form `local@domain`, trimmed and lower-cased.
///
/// Exchange and TOPdesk both compare addresses case-insensitively, so ORB stores one canonical spelling:
/// `Anna.Bakker@Contoso.COM` and `anna.bakker@contoso.com` are the same [`EmailAddress`].
/// Deserialising validates too, so a stored or received value can never bypass the rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

const LOCAL_SPECIALS: &str = "!#$%&'*+/=?^_`{|}~-.";

impl EmailAddress {
    /// Parses and normalises an address. See the type docs for the rules.
    pub fn parse(input: &str) -> Result<Self, CoreError> {
        let trimmed = input.trim();
        let err = |reason| CoreError::InvalidEmail { input: trimmed.to_owned(), reason };
        if trimmed.is_empty() {
            return Err(err("it is empty"));
        }
        if trimmed.len() > 254 {
            return Err(err("it is longer than 254 characters"));
        }
        let (local, domain) = trimmed.rsplit_once('@').ok_or_else(|| err("it has no '@'"))?;
        if local.is_empty() {
            return Err(err("nothing before the '@'"));
        }
        if local.len() > 64 {
            return Err(err("the part before the '@' is longer than 64 characters"));
        }
        if !local.chars().all(|c| c.is_ascii_alphanumeric() || LOCAL_SPECIALS.contains(c)) {
            return Err(err("the part before the '@' contains a character that is not allowed"));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(err("the part before the '@' has a misplaced dot"));
        }
        if domain.is_empty() {
            return Err(err("nothing after the '@'"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(err("the domain has no dot"));
        }
        for label in &labels {
            if label.is_empty() || label.len() > 63 {
                return Err(err("the domain has an empty or over-long part"));
            }
            if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(err("the domain contains a character that is not allowed"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(err("a domain part starts or ends with '-'"));
            }
        }
        Ok(Self(trimmed.to_ascii_lowercase()))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the `@`.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for EmailAddress {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, &str>) {
        match (EmailAddress::parse(input), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got.as_str(), want, "input {input:?}"),
            (Err(got), Err(reason)) => {
                let msg = got.to_string();
                assert!(msg.contains(reason), "input {input:?}: message {msg:?} should contain {reason:?}");
            }
            (got, want) => panic!("input {input:?}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn parses_and_normalises() {
        check("anna@contoso.com", Ok("anna@contoso.com"));
        check("  Anna.Bakker@Contoso.COM ", Ok("anna.bakker@contoso.com"));
        check("room-4.12@rooms.contoso.onmicrosoft.com", Ok("room-4.12@rooms.contoso.onmicrosoft.com"));
        check("o'brien+cal@x-y.example.nl", Ok("o'brien+cal@x-y.example.nl"));
    }

    #[test]
    fn rejects_malformed_addresses_with_a_reason() {
        check("", Err("it is empty"));
        check("anna", Err("no '@'"));
        check("@contoso.com", Err("nothing before the '@'"));
        check("anna@", Err("nothing after the '@'"));
        check("anna@localhost", Err("the domain has no dot"));
        check("an na@contoso.com", Err("not allowed"));
        check(".anna@contoso.com", Err("misplaced dot"));
        check("an..na@contoso.com", Err("misplaced dot"));
        check("anna@contoso..com", Err("empty or over-long"));
        check("anna@-contoso.com", Err("starts or ends with '-'"));
        check("anna@con_toso.com", Err("not allowed"));
        check(&format!("{}@contoso.com", "a".repeat(65)), Err("longer than 64"));
    }

    #[test]
    fn deserialising_validates() {
        let ok: EmailAddress = serde_json::from_str("\"Bob@Example.org\"").unwrap();
        assert_eq!(ok.as_str(), "bob@example.org");
        assert!(serde_json::from_str::<EmailAddress>("\"bob\"").is_err());
    }
}
