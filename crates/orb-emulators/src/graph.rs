//! The Microsoft Graph emulator.
