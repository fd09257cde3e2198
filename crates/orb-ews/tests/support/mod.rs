//! What the client-against-emulator tests share: the people and rooms, instants in September 2026, the
//! emulator's start time, a Basic-auth client for an emulator account, and a request target.

#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use orb_core::{CorrelationId, EmailAddress, FixedClock};
use orb_emulators::ews::Served;
use orb_ews::{Auth, EwsClient, EwsConfig, Target};
use secrecy::SecretString;

pub const ALICE: &str = "alice@contoso.com";
pub const ROOM: &str = "room-4.12@contoso.com";

pub fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

/// 2026-09-`day` at `hour`:00 UTC (10:00 in Amsterdam is 08:00Z in September).
pub fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 9, day, hour, 0, 0).unwrap()
}

/// The emulator's clock: 2026-08-20 09:00 UTC.
pub fn start_clock() -> FixedClock {
    FixedClock::new(Utc.with_ymd_and_hms(2026, 8, 20, 9, 0, 0).unwrap())
}

/// A client of the emulator `served` signing in as `user` (Basic, plain HTTP allowed for the test).
pub fn client(served: &Served, user: &str, password: &str) -> EwsClient {
    let auth = Auth::Basic { username: user.into(), password: SecretString::from(password.to_owned()) };
    let config =
        EwsConfig { allow_plain_http: true, ..EwsConfig::new(served.ews_url().parse().unwrap(), auth) };
    EwsClient::new(config).unwrap()
}

pub fn target(mailbox: &EmailAddress) -> Target<'_> {
    Target { mailbox, correlation: CorrelationId::generate(at(1, 0)) }
}
