//! Loopback ports for tests that start servers, their own or the real BIND,
//! Unbound, PowerDNS, Knot and PostgreSQL.
//!
//! A port asked of the kernel (`bind(…:0)`) comes from the ephemeral range, the
//! same range the kernel hands to every outgoing connection and unbound UDP
//! socket, so between "this port is free" and the server binding it another
//! test's client can take it (CI once failed that way: a TCP bind on the port a
//! UDP socket had just been given). The ports here are taken from below the
//! ephemeral range, where the kernel never picks on its own, spread by process
//! id so that test binaries running at once start far apart, and checked free
//! for both UDP and TCP before they are handed out.

use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out.
const LOW: u32 = 10_000;
/// How many candidates are tried before giving up.
const ATTEMPTS: u32 = 2_000;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The first port of the kernel's ephemeral range (Linux: 32768 unless set).
fn ephemeral_low() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .filter(|&p: &u32| p > LOW + 1_000)
        .unwrap_or(32_768)
}

/// A loopback port free for UDP and TCP at the time of the call, outside the
/// kernel's ephemeral range; distinct from every other port this process got.
///
/// # Panics
/// When no port in the range is free (the machine is out of ports).
#[must_use]
pub fn free_port() -> u16 {
    let span = ephemeral_low() - LOW;
    let start = std::process::id().wrapping_mul(2_654_435_761) % span;
    for _ in 0..ATTEMPTS {
        // 7919 is prime, so unless the span is a multiple of it the walk
        // visits every port of the span before it comes back.
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + (start + step.wrapping_mul(7_919)) % span;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        let free = UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no free loopback port below the ephemeral range after {ATTEMPTS} tries")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_below_the_ephemeral_range() {
        let low = ephemeral_low();
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
        for p in ports {
            assert!(
                u32::from(p) >= LOW && u32::from(p) < low,
                "{p} outside {LOW}..{low}"
            );
        }
        // Still free: a server can bind the port it was given, UDP and TCP.
        let p = free_port();
        let _u = UdpSocket::bind(("127.0.0.1", p)).unwrap_or_else(|e| panic!("{e}"));
        let _t = TcpListener::bind(("127.0.0.1", p)).unwrap_or_else(|e| panic!("{e}"));
    }
}
