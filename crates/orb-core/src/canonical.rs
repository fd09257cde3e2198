//! Canonical fields and the fingerprint.
//!
//! The canonical fields of a booking are exactly what ORB syncs: room, start, end (UTC), organizer,
//! participants, subject (after the privacy policy) and cancelled. Everything else a side holds (body,
//! importance, change keys, TOPdesk services, ...) is outside them, so a change there never changes the
//! fingerprint and never causes a write.
//!
//! ## Fingerprint (version 1)
//! SHA-256 over this UTF-8 text, one `key=value` line each, in this order, each line ending in `\n`:
//!
//! ```text
//! orb-fingerprint-v1
//! room=<room id (UUID) | unmanaged:<address or location id> | none>
//! start=<Unix seconds, truncated to the minute>
//! end=<Unix seconds, truncated to the minute>
//! organizer=<normalised e-mail>
//! participants=<normalised e-mails, sorted, de-duplicated, joined by ','>
//! subject=<'-' when absent | <length in bytes>:<text>>
//! cancelled=<0|1>
//! ```
//! Minute precision because TOPdesk keeps minutes; the length prefix keeps a subject containing a newline
//! from imitating another field. The digest is shown as 64 lower-case hex digits ([`Fingerprint`]).

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::{BookingRecord, EmailAddress, Fingerprint, RoomId};

/// The room of a booking as ORB understands it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CanonicalRoom {
    /// A mapped, enabled room.
    Managed(RoomId),
    /// A room ORB does not manage (its address or location id as text).
    Unmanaged(String),
    /// No room at all (e.g. the room was removed from the meeting).
    None,
}

/// The fields ORB syncs, normalised. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanonicalFields {
    /// Room.
    pub room: CanonicalRoom,
    /// Start (UTC, minute precision).
    pub start: DateTime<Utc>,
    /// End (UTC, minute precision).
    pub end: DateTime<Utc>,
    /// Organizer (the person the booking is for).
    pub organizer: EmailAddress,
    /// Participants: sorted, without duplicates.
    pub participants: Vec<EmailAddress>,
    /// Subject, after the privacy policy.
    pub subject: Option<String>,
    /// Cancelled (or deleted).
    pub cancelled: bool,
}

/// Truncates an instant to the minute.
pub fn to_minute(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::minutes(1)).unwrap_or(at)
}

/// Sorts and de-duplicates e-mail addresses.
pub fn normalise_people(people: impl IntoIterator<Item = EmailAddress>) -> Vec<EmailAddress> {
    let mut v: Vec<EmailAddress> = people.into_iter().collect();
    v.sort();
    v.dedup();
    v
}

impl CanonicalFields {
    /// Builds canonical fields, normalising times (minute), participants (sorted, unique, without the
    /// organizer) and the subject (trimmed; empty means absent).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        room: CanonicalRoom,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        organizer: EmailAddress,
        participants: impl IntoIterator<Item = EmailAddress>,
        subject: Option<String>,
        cancelled: bool,
    ) -> Self {
        let participants = normalise_people(participants.into_iter().filter(|p| *p != organizer));
        Self {
            room,
            start: to_minute(start),
            end: to_minute(end),
            organizer,
            participants,
            subject: normalise_subject(subject),
            cancelled,
        }
    }

    /// The canonical fields an ORB record stands for.
    pub fn from_record(record: &BookingRecord) -> Self {
        Self::new(
            CanonicalRoom::Managed(record.room_id),
            record.start,
            record.end,
            record.organizer.clone(),
            record.participants.iter().cloned(),
            record.subject.clone(),
            record.cancelled,
        )
    }

    /// The exact text that is hashed (see the module docs).
    pub fn fingerprint_text(&self) -> String {
        let room = match &self.room {
            CanonicalRoom::Managed(id) => id.to_string(),
            CanonicalRoom::Unmanaged(text) => format!("unmanaged:{text}"),
            CanonicalRoom::None => "none".to_owned(),
        };
        let participants: Vec<&str> = self.participants.iter().map(EmailAddress::as_str).collect();
        let subject = match &self.subject {
            None => "-".to_owned(),
            Some(s) => format!("{}:{s}", s.len()),
        };
        format!(
            "orb-fingerprint-v1\nroom={room}\nstart={}\nend={}\norganizer={}\nparticipants={}\nsubject={subject}\ncancelled={}\n",
            to_minute(self.start).timestamp(),
            to_minute(self.end).timestamp(),
            self.organizer,
            participants.join(","),
            u8::from(self.cancelled),
        )
    }

    /// The fingerprint of these fields.
    pub fn fingerprint(&self) -> Fingerprint {
        use sha2::Digest as _;
        Fingerprint::from_bytes(sha2::Sha256::digest(self.fingerprint_text().as_bytes()).into())
    }

    /// `self` with the named fields (as [`Self::changed_fields`] names them) taken from `other`.
    #[must_use]
    pub fn with_fields_of(mut self, other: &Self, fields: &[&str]) -> Self {
        for field in fields {
            match *field {
                "room" => self.room = other.room.clone(),
                "start" => self.start = other.start,
                "end" => self.end = other.end,
                "organizer" => self.organizer = other.organizer.clone(),
                "participants" => self.participants.clone_from(&other.participants),
                "subject" => self.subject.clone_from(&other.subject),
                "cancelled" => self.cancelled = other.cancelled,
                _ => {}
            }
        }
        self
    }

    /// Names of the fields that differ between `self` and `other` (for the timeline; never the values).
    pub fn changed_fields(&self, other: &Self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.room != other.room {
            out.push("room");
        }
        if self.start != other.start {
            out.push("start");
        }
        if self.end != other.end {
            out.push("end");
        }
        if self.organizer != other.organizer {
            out.push("organizer");
        }
        if self.participants != other.participants {
            out.push("participants");
        }
        if self.subject != other.subject {
            out.push("subject");
        }
        if self.cancelled != other.cancelled {
            out.push("cancelled");
        }
        out
    }
}

/// Trims a subject; an empty subject is no subject.
pub fn normalise_subject(subject: Option<String>) -> Option<String> {
    subject.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}
