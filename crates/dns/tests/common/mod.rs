//! What the `dns` integration tests share: a primary serving on a loopback port
//! of the kernel's choosing (UDP and TCP on one port), and the zone description
//! their in-memory sources hand out.

use std::net::SocketAddr;

use dns::Server;
use dns::{SoaFields, ZoneInfo};

/// Runs `server` on 127.0.0.1 (UDP and TCP on one free port) until the returned
/// sender is used or dropped.
pub fn serve(server: Server) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let (udp, tcp) = dns::bind_udp_tcp("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = udp.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let udp = tokio::net::UdpSocket::from_std(udp).unwrap_or_else(|e| panic!("{e}"));
    let tcp = tokio::net::TcpListener::from_std(tcp).unwrap_or_else(|e| panic!("{e}"));
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(server.run(udp, tcp, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// The feed `phishing` at `apex` and `serial`, with the tests' SOA fields.
pub fn info(apex: &str, serial: u32) -> ZoneInfo {
    ZoneInfo {
        feed: "phishing".into(),
        apex: apex.into(),
        serial,
        soa: SoaFields {
            ttl: 300,
            mname: "localhost".into(),
            rname: "root.localhost".into(),
            refresh: 3600,
            retry: 600,
            expire: 864000,
            minimum: 300,
            ns: vec!["localhost".into()],
        },
    }
}
