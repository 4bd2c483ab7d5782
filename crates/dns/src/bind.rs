//! One port for UDP and TCP. DNS is served on both with the same port, and when
//! the operator (or a test) asks for port 0 the kernel picks the UDP port first;
//! the TCP bind on that port can then lose to a socket another program already
//! has there (a client's ephemeral port, say). Binding the pair here, trying a
//! new port a bounded number of times when the port was the kernel's choice,
//! keeps that race out of every caller.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

/// How many kernel-chosen ports are tried before giving up.
const ATTEMPTS: usize = 32;

/// Binds `addr` for UDP with `udp` and TCP with `tcp` on the same port. A fixed
/// port is tried once; port 0 is retried with a new kernel-chosen port while TCP
/// finds the UDP port taken.
pub fn bind_pair<U, T>(
    addr: SocketAddr,
    mut udp: impl FnMut(SocketAddr) -> io::Result<U>,
    mut tcp: impl FnMut(SocketAddr) -> io::Result<T>,
    local: impl Fn(&U) -> io::Result<SocketAddr>,
) -> io::Result<(U, T)> {
    let attempts = if addr.port() == 0 { ATTEMPTS } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let u = udp(addr)?;
        let bound = local(&u)?;
        match tcp(bound) {
            Ok(t) => return Ok((u, t)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
}

/// A UDP socket and a TCP listener on one port of `addr` (port 0: any free port),
/// non-blocking, ready for tokio's `from_std`.
pub fn bind_udp_tcp(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let (udp, tcp) = bind_pair(
        addr,
        UdpSocket::bind,
        TcpListener::bind,
        UdpSocket::local_addr,
    )?;
    udp.set_nonblocking(true)?;
    tcp.set_nonblocking(true)?;
    Ok((udp, tcp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_chosen_ports_are_retried_and_fixed_ports_are_not() {
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}"));
        // TCP refuses the first two ports the kernel picks.
        let mut refusals = 2;
        let (u, t) = bind_pair(
            loopback,
            UdpSocket::bind,
            |a| {
                if refusals > 0 {
                    refusals -= 1;
                    Err(io::Error::from(io::ErrorKind::AddrInUse))
                } else {
                    TcpListener::bind(a)
                }
            },
            UdpSocket::local_addr,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let port = u.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
        assert_eq!(
            t.local_addr().unwrap_or_else(|e| panic!("{e}")).port(),
            port
        );
        assert_eq!(refusals, 0);

        // A fixed port whose TCP side is taken is an error at once.
        let taken = TcpListener::bind(loopback).unwrap_or_else(|e| panic!("{e}"));
        let fixed = taken.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let mut tries = 0;
        let err = bind_pair(
            fixed,
            |a| {
                tries += 1;
                UdpSocket::bind(a)
            },
            TcpListener::bind,
            UdpSocket::local_addr,
        )
        .err()
        .map(|e| e.kind());
        // The UDP port may itself be in use by someone else; either way one try.
        assert!(err.is_some());
        assert_eq!(tries, 1);
    }
}
