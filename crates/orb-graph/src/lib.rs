//! # orb-graph
//!
//! ORB's typed Microsoft Graph client and the Graph wire types (shared with the Graph emulator in
//! `orb-emulators`, so both speak one schema: the subset in the shared reference).
//!
//! ## Must not depend on
//! orb-store, orb-web, orb-engine.
