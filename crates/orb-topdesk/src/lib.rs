//! # orb-topdesk
//!
//! ORB's typed TOPdesk REST client and the TOPdesk wire types (shared with the TOPdesk emulator in
//! `orb-emulators`).
//!
//! ## Must not depend on
//! orb-store, orb-web, orb-engine.
