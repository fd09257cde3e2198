use thiserror::Error;

/// Why a value from outside could not become an ORB domain value.
///
/// Every variant names the offending input and says what a valid one looks like, so the message can be
/// shown to an operator as it is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CoreError {
    /// An e-mail address that does not have the form `local@domain.tld`.
    #[error("invalid e-mail address {input:?}: {reason}; expected something like name@example.com")]
    InvalidEmail {
        /// The text as given (trimmed).
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An identifier that is not a UUID.
    #[error("invalid {kind} id {input:?}: expected a UUID such as 0190f0e4-7d1c-7a3b-9a6f-2b1c3d4e5f60")]
    InvalidId {
        /// Which kind of id (tenant, room, booking, ...).
        kind: &'static str,
        /// The text as given.
        input: String,
    },
    /// A name that is empty, too long or uses characters we do not accept.
    #[error("invalid {kind} {input:?}: {reason}")]
    InvalidName {
        /// What kind of name (tenant name, TOPdesk location id, ...).
        kind: &'static str,
        /// The text as given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A time zone name that chrono-tz does not know.
    #[error("unknown time zone {input:?}: expected an IANA name such as Europe/Amsterdam")]
    UnknownTimeZone {
        /// The text as given.
        input: String,
    },
    /// A stored enum value that this version of ORB does not know.
    #[error("unknown {kind} {input:?}")]
    UnknownVariant {
        /// Which enum.
        kind: &'static str,
        /// The text as stored.
        input: String,
    },
    /// A Graph time-zone name (Windows id or IANA name) that the CLDR table and chrono-tz do not know.
    #[error(
        "unknown Windows time zone {input:?}: expected a Windows zone id such as \"W. Europe Standard Time\" \
         or an IANA name such as Europe/Amsterdam; update the CLDR table (scripts/gen_windows_zones.py) if \
         Microsoft added a zone"
    )]
    UnknownWindowsZone {
        /// The text as given.
        input: String,
    },
    /// A recurrence pattern that Graph would not accept or that ORB cannot expand.
    #[error(
        "invalid recurrence: {reason}; fix the series in Outlook or report the event to the ORB operator"
    )]
    InvalidRecurrence {
        /// What is wrong with it.
        reason: String,
    },
    /// A fingerprint that is not 64 lower-case hex digits.
    #[error("invalid fingerprint {input:?}: expected 64 hexadecimal digits")]
    InvalidFingerprint {
        /// The text as given.
        input: String,
    },
}

impl CoreError {
    /// Domain validation errors never go away by retrying: the input has to change.
    pub fn is_retryable(&self) -> bool {
        false
    }
}
