//! The TOPdesk emulator.
