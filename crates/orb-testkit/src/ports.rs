//! Ports for servers a test starts in another process (`orb serve`, chromedriver), which must be
//! told their port before they bind it.
//!
//! Asking the kernel for port 0 and releasing it again races: a port from the ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`, 32768–60999 by default) is handed to the next outgoing
//! connection of any process — Chromium, an HTTP client, PostgreSQL — so by the time the child binds
//! it, it may be taken ("Address already in use"). [`free_port`] therefore picks ports *below* the
//! ephemeral range, which the kernel never hands out on its own: the only other takers are tests that
//! pick ports the same way, and within a process a counter keeps them apart.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port [`free_port`] hands out (well above the privileged and well-known ports).
const LOW: u32 = 20_000;

/// Where the kernel's ephemeral range starts on this machine (32768 when it cannot be read).
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A port on 127.0.0.1 that is free now and that the kernel will not give to an outgoing connection
/// meanwhile: below the ephemeral range, never the same twice in one process, and checked by binding it.
/// Each test process starts at its own offset (from its pid), so two test processes running side by
/// side rarely try the same ports.
///
/// # Panics
/// When no port between 20000 and the start of the ephemeral range can be bound.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let high = ephemeral_start().clamp(LOW + 1_000, 65_536);
    let span = high - LOW;
    let offset = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + (offset + n) % span;
        let Ok(port) = u16::try_from(port) else { continue };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {high} on 127.0.0.1");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_bindable_and_never_repeat() {
        let start = ephemeral_start();
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "a port was handed out twice: {ports:?}");
        for port in ports {
            assert!(u32::from(port) >= LOW && u32::from(port) < start.max(LOW + 1_000), "{port}");
            TcpListener::bind(("127.0.0.1", port)).expect("the port is still free");
        }
    }
}
