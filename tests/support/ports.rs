//! Ports for the servers tests start on 127.0.0.1 (`support::free_port`), for every fixture and
//! test that starts one. It only picks a port; it never keeps it bound.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};

/// A port on 127.0.0.1 that nothing listens on, picked below the kernel's range for outgoing
/// connections. A port from that range (what binding port 0 gives) can be taken by any client
/// connection of a test running in parallel between this check and the server's own bind; a
/// port below it can only be taken by another listener.
pub fn free_port() -> u16 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let ephemeral_low: u64 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let low = 10_000u64;
    let span = ephemeral_low.saturating_sub(low).max(1000);
    let seed = u64::from(std::process::id()).wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
    for _ in 0..2000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = low + (seed.wrapping_add(n.wrapping_mul(7919))) % span;
        if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
    panic!("no free port on 127.0.0.1 between {low} and {}", low + span);
}
