//! A tenant in the Graph emulator, served on 127.0.0.1:0, and ORB's client pointed at it.
#![allow(dead_code, missing_docs)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use orb_core::{CorrelationId, EmailAddress, FixedClock};
use orb_emulators::graph::{GraphEmulator, RoomInfo, Served, serve};
use orb_graph::model::{Attendee, DateTimeTimeZone, Event, Location};
use orb_graph::{AppRegistration, ClientOptions, Credential, Endpoints, GraphClient};
use secrecy::SecretString;

pub const TENANT: &str = "7d2a5c1e-0b9f-4c1a-9f77-3e1f2a4b5c6d";
pub const CLIENT_ID: &str = "0f3b6a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
pub const SECRET: &str = "emulator-secret-value";

pub struct World {
    pub em: GraphEmulator,
    pub served: Served,
    pub clock: FixedClock,
}

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("test instant").with_timezone(&Utc)
}

pub fn addr(text: &str) -> EmailAddress {
    EmailAddress::parse(text).expect("test address")
}

pub fn corr() -> CorrelationId {
    CorrelationId::generate(at("2026-09-01T06:00:00Z"))
}

impl World {
    pub async fn start() -> Self {
        let clock = FixedClock::new(at("2026-09-01T06:00:00Z"));
        let em = GraphEmulator::new(Arc::new(clock.clone()));
        em.add_app_secret(TENANT, CLIENT_ID, SECRET);
        em.add_user(TENANT, "anna@contoso.com", "Anna Bakker");
        em.add_user(TENANT, "bob@contoso.com", "Bob de Vries");
        em.add_room(
            TENANT,
            "room1@contoso.com",
            "Room 1",
            RoomInfo { capacity: Some(8), ..RoomInfo::default() },
        );
        em.add_room(TENANT, "room2@contoso.com", "Room 2", RoomInfo::default());
        let served = serve(em.clone()).await.expect("emulator serves");
        Self { em, served, clock }
    }

    pub fn app(&self, credential: Credential) -> AppRegistration {
        AppRegistration {
            tenant: TENANT.to_owned(),
            client_id: CLIENT_ID.to_owned(),
            credential: Arc::new(credential),
        }
    }

    pub fn client_with(&self, credential: Credential, options: ClientOptions) -> GraphClient {
        let endpoints = Endpoints::from_root(&self.served.base_url).expect("base URL");
        GraphClient::new(endpoints, self.app(credential), Arc::new(self.clock.clone()), options)
            .expect("client")
    }

    pub fn client(&self) -> GraphClient {
        self.client_with(Credential::Secret(SecretString::from(SECRET)), ClientOptions::default())
    }
}

/// A meeting in `room` from `start` to `end` (UTC wall-clock text).
pub fn meeting(subject: &str, room: &str, start: &str, end: &str) -> Event {
    Event {
        subject: Some(subject.to_owned()),
        start: Some(DateTimeTimeZone { date_time: start.to_owned(), time_zone: Some("UTC".to_owned()) }),
        end: Some(DateTimeTimeZone { date_time: end.to_owned(), time_zone: Some("UTC".to_owned()) }),
        location: Some(Location::room(room, room)),
        attendees: Some(vec![Attendee::resource(room, None)]),
        ..Event::default()
    }
}

/// A self-signed RSA certificate (DER) and its PKCS#8 private key (DER).
pub fn certificate() -> (Vec<u8>, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let cert = rcgen::CertificateParams::new(vec!["orb.test".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("self-signed");
    (cert.der().to_vec(), key.serialize_der())
}
