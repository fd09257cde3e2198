//! # orb-auth
//!
//! How the admin portal knows who is asking: Argon2id password hashes, TOTP second factors (with replay
//! protection), recovery codes, the lockout policy, CSRF tokens, IP allow-lists, and OpenID Connect single
//! sign-on (authorization code + PKCE).
//!
//! ## Must not depend on
//! orb-store, orb-web, orb-engine (this crate decides; the portal stores and serves).
