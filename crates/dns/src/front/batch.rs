//! The batched UDP loop ([`Io::Batch`](super::Io::Batch)): one `recvmmsg` takes
//! every datagram that has arrived (up to [`BATCH`]), the answers that are ready
//! at once (blocked names, cache hits) go out together in one `sendmmsg`, and
//! cache misses go to the tokio runtime as in the one-at-a-time loop.
//!
//! Most of a query's cost on this path is the kernel's, and a good part of that
//! is entering and leaving it: two system calls per query one at a time, two per
//! batch here. Under load the batches fill; when queries trickle in, a batch is
//! one datagram and this is the one-at-a-time loop. The system calls come from
//! `nix`, whose wrappers are safe (the workspace forbids `unsafe`).

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrLike, SockaddrStorage, recvmmsg, sendmmsg};

use super::{Front, Outcome};

/// Datagrams moved per system call at most.
pub const BATCH: usize = 32;
/// Room for one query. Larger datagrams arrive truncated and are dropped: a DNS
/// query has one question and an OPT record, far below this.
const SLOT: usize = 4_096;

fn std_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

impl Front {
    pub(super) fn udp_batch_thread(
        &self,
        socket: Arc<UdpSocket>,
        runtime: tokio::runtime::Handle,
        stop: &AtomicBool,
    ) {
        let fd = socket.as_raw_fd();
        let mut slots: Vec<Box<[u8]>> = (0..BATCH).map(|_| vec![0u8; SLOT].into()).collect();
        let mut outs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(1_024)).collect();
        let mut receiving = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut sending = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        // Per received datagram: its length and sender (None: dropped).
        let mut arrived: Vec<(usize, Option<SocketAddr>)> = Vec::with_capacity(BATCH);
        // Per ready answer: the slot of `outs` it is in and its destination.
        let mut ready: Vec<usize> = Vec::with_capacity(BATCH);
        let mut destinations: Vec<Option<SockaddrStorage>> = Vec::with_capacity(BATCH);
        while !stop.load(Ordering::Relaxed) {
            arrived.clear();
            {
                let mut iovs: Vec<[IoSliceMut<'_>; 1]> = slots
                    .iter_mut()
                    .map(|s| [IoSliceMut::new(&mut s[..])])
                    .collect();
                // Blocks (up to the socket's read timeout) for the first datagram,
                // then takes what is there without waiting.
                match recvmmsg(
                    fd,
                    &mut receiving,
                    iovs.iter_mut(),
                    MsgFlags::MSG_WAITFORONE,
                    None,
                ) {
                    Ok(received) => arrived.extend(received.map(|m| {
                        let whole = !m.flags.contains(MsgFlags::MSG_TRUNC);
                        (
                            m.bytes,
                            m.address.as_ref().and_then(std_addr).filter(|_| whole),
                        )
                    })),
                    Err(Errno::EAGAIN | Errno::EINTR) => continue,
                    Err(e) => {
                        tracing::debug!(error = %e, "udp receive failed");
                        continue;
                    }
                }
            }
            ready.clear();
            destinations.clear();
            for (i, &(len, src)) in arrived.iter().enumerate() {
                let (Some(src), Some(slot), Some(out)) = (src, slots.get(i), outs.get_mut(i))
                else {
                    continue;
                };
                let query = slot.get(..len).unwrap_or_default();
                let outcome = match self.notify(query, src, out) {
                    Some(o) => o,
                    None => self.answer_now(query, src.ip(), false, out),
                };
                match outcome {
                    Outcome::Reply => {
                        ready.push(i);
                        destinations.push(Some(SockaddrStorage::from(src)));
                    }
                    Outcome::Drop => {}
                    Outcome::Upstream => self.spawn_miss(&runtime, &socket, query, src),
                }
            }
            self.send_ready(fd, &mut sending, &outs, &ready, &destinations);
        }
    }

    /// Sends the answers in `outs` named by `ready` to `destinations`, as few
    /// `sendmmsg` calls as the kernel allows; an answer the kernel refuses is
    /// skipped (as a failed `send_to` is in the one-at-a-time loop).
    fn send_ready(
        &self,
        fd: std::os::fd::RawFd,
        sending: &mut MultiHeaders<SockaddrStorage>,
        outs: &[Vec<u8>],
        ready: &[usize],
        destinations: &[Option<SockaddrStorage>],
    ) {
        let mut from = 0;
        // Each round sends at least one answer or skips one.
        for _ in 0..=ready.len() {
            let (Some(rest), Some(to)) = (ready.get(from..), destinations.get(from..)) else {
                return;
            };
            if rest.is_empty() {
                return;
            }
            let iovs: Vec<[IoSlice<'_>; 1]> = rest
                .iter()
                .map(|&i| [IoSlice::new(outs.get(i).map_or(&[][..], Vec::as_slice))])
                .collect();
            let no_control: [nix::sys::socket::ControlMessage<'_>; 0] = [];
            match sendmmsg(fd, sending, iovs.iter(), to, no_control, MsgFlags::empty()) {
                Ok(sent) => from += sent.count().max(1),
                Err(Errno::EINTR) => {}
                Err(e) => {
                    tracing::debug!(error = %e, to = ?to.first().and_then(|d| d.as_ref().map(SockaddrLike::family)), "udp send failed");
                    from += 1;
                }
            }
        }
    }
}
