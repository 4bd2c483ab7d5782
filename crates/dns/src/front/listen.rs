//! The listeners: UDP sockets sharing one port (`SO_REUSEPORT`, so the kernel
//! spreads clients over them) and one TCP listener.
//!
//! Three ways of reading the UDP sockets are kept because which is faster depends
//! on the machine and was measured (`docs/performance.md`): [`Io::Batch`] (Linux,
//! the default there) gives each socket an OS thread that moves many datagrams per
//! system call (`batch.rs`); [`Io::Threads`] the same thread in a blocking
//! `recv_from`/`send_to` loop; [`Io::Tokio`] reads them from tasks. Every way, a
//! cache miss becomes a task on the tokio runtime that sends its answer when the
//! upstream has replied, and TCP is served by tasks, one per connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::{Front, Io, Outcome};

/// How long a TCP connection may stay idle between queries (RFC 7766 §6.2.3).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// TCP connections served at once; more wait in the accept queue.
const TCP_MAX_CONNECTIONS: usize = 1_024;
/// How often a blocked UDP reader thread looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(200);
/// Socket receive buffer asked for (the kernel may cap it).
const RECV_BUFFER: usize = 4 << 20;

/// Opcode NOTIFY (RFC 1996), in bits 3–6 of the header's third byte.
const OPCODE_NOTIFY: u8 = 4;

/// Receives the NOTIFY messages that arrive on the filter's DNS port (the zone
/// manager): the primary sends them where the filter answers queries, as it would
/// to BIND. Returns the answer to send, if any.
pub trait NotifyHandler: Send + Sync + 'static {
    fn notify(&self, message: &[u8], src: SocketAddr) -> Option<Vec<u8>>;
}

/// Bound sockets, ready to serve.
#[derive(Debug)]
pub struct Listeners {
    udp: Vec<std::net::UdpSocket>,
    tcp: std::net::TcpListener,
    addr: SocketAddr,
}

impl Listeners {
    /// The address served (the port resolved when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    // A larger buffer absorbs bursts; refusal is not an error.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn tcp_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let tcp = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    tcp.set_reuse_address(true)?;
    tcp.bind(&addr.into())?;
    tcp.listen(1_024)?;
    Ok(tcp.into())
}

impl Front {
    /// Hands every message with opcode NOTIFY to `handler` from now on (once;
    /// a second handler is refused and returned).
    pub fn set_notify_handler(
        &self,
        handler: Arc<dyn NotifyHandler>,
    ) -> Result<(), Arc<dyn NotifyHandler>> {
        self.inner.notify.set(handler)
    }

    /// A NOTIFY for the handler: its answer in `out` (`Some(Reply)`), or nothing to
    /// send (`Some(Drop)`). `None`: not a NOTIFY, or no handler (answered as any
    /// other message). One byte is read on the query path.
    pub(super) fn notify(
        &self,
        message: &[u8],
        src: SocketAddr,
        out: &mut Vec<u8>,
    ) -> Option<Outcome> {
        let opcode = (message.get(2)? >> 3) & 0xF;
        if opcode != OPCODE_NOTIFY {
            return None;
        }
        let handler = self.inner.notify.get()?;
        out.clear();
        Some(match handler.notify(message, src) {
            Some(reply) => {
                out.extend_from_slice(&reply);
                Outcome::Reply
            }
            None => Outcome::Drop,
        })
    }

    /// Binds the UDP sockets (one per core unless configured) and the TCP listener
    /// on `addr`.
    pub fn bind(&self, addr: SocketAddr) -> std::io::Result<Listeners> {
        let n = match self.inner.config.udp_sockets {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        // The first UDP socket fixes the port (the kernel's choice for port 0,
        // retried by `bind_pair` when TCP finds it taken); the rest share it.
        let (first, tcp) = crate::bind_pair(addr, udp_socket, tcp_listener, |u| u.local_addr())?;
        let addr = first.local_addr()?;
        let mut udp = vec![first];
        for _ in 1..n {
            udp.push(udp_socket(addr)?);
        }
        Ok(Listeners { udp, tcp, addr })
    }

    /// Serves on `listeners` until `shutdown` completes. Must run inside a tokio
    /// runtime (cache misses and TCP are tasks on it).
    pub async fn serve(
        self,
        listeners: Listeners,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let Listeners { udp, tcp, .. } = listeners;
        tcp.set_nonblocking(true)?;
        let tcp = tokio::net::TcpListener::from_std(tcp)?;
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(self.clone().tcp_loop(tcp));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        match self.inner.config.io {
            Io::Threads | Io::Batch => {
                let batch = self.inner.config.io == Io::Batch;
                let runtime = tokio::runtime::Handle::current();
                for (i, socket) in udp.into_iter().enumerate() {
                    socket.set_read_timeout(Some(STOP_POLL))?;
                    let front = self.clone();
                    let stop = stop.clone();
                    let runtime = runtime.clone();
                    threads.push(std::thread::Builder::new().name(format!("udp-{i}")).spawn(
                        move || {
                            let socket = Arc::new(socket);
                            #[cfg(target_os = "linux")]
                            if batch {
                                return front.udp_batch_thread(socket, runtime, &stop);
                            }
                            #[cfg(not(target_os = "linux"))]
                            let _ = batch;
                            front.udp_thread(socket, runtime, &stop);
                        },
                    )?);
                }
            }
            Io::Tokio => {
                for socket in udp {
                    socket.set_nonblocking(true)?;
                    let socket = Arc::new(tokio::net::UdpSocket::from_std(socket)?);
                    tasks.spawn(self.clone().udp_task(socket));
                }
            }
        }
        let result = tokio::select! {
            () = shutdown => Ok(()),
            Some(r) = tasks.join_next() => match r {
                Ok(Err(e)) => Err(e),
                _ => Ok(()),
            },
        };
        stop.store(true, Ordering::Relaxed);
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        });
        let _ = joined.await;
        result
    }

    fn udp_thread(
        &self,
        socket: Arc<std::net::UdpSocket>,
        runtime: tokio::runtime::Handle,
        stop: &AtomicBool,
    ) {
        let mut buf = vec![0u8; 65_535];
        let mut out = Vec::with_capacity(4_096);
        while !stop.load(Ordering::Relaxed) {
            let (len, src) = match socket.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "udp receive failed");
                    continue;
                }
            };
            let query = buf.get(..len).unwrap_or_default();
            let outcome = match self.notify(query, src, &mut out) {
                Some(o) => o,
                None => self.answer_now(query, src.ip(), false, &mut out),
            };
            match outcome {
                Outcome::Reply => {
                    let _ = socket.send_to(&out, src);
                }
                Outcome::Drop => {}
                Outcome::Upstream => self.spawn_miss(&runtime, &socket, query, src),
            }
        }
    }

    /// Resolves a cache miss read by a reader thread as a task on `runtime`; the
    /// answer goes out from `socket` when the upstream has replied. A UDP send does
    /// not block in practice, though the socket is the reader thread's blocking one.
    pub(super) fn spawn_miss(
        &self,
        runtime: &tokio::runtime::Handle,
        socket: &Arc<std::net::UdpSocket>,
        query: &[u8],
        src: SocketAddr,
    ) {
        let front = self.clone();
        let socket = socket.clone();
        let query = query.to_vec();
        runtime.spawn(async move {
            let mut out = Vec::new();
            if front.answer(&query, src.ip(), false, &mut out).await == Outcome::Reply {
                let _ = socket.send_to(&out, src);
            }
        });
    }

    async fn udp_task(self, socket: Arc<tokio::net::UdpSocket>) -> std::io::Result<()> {
        let mut buf = vec![0u8; 65_535];
        let mut out = Vec::with_capacity(4_096);
        loop {
            let (len, src) = match socket.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "udp receive failed");
                    continue;
                }
            };
            let query = buf.get(..len).unwrap_or_default();
            let outcome = match self.notify(query, src, &mut out) {
                Some(o) => o,
                None => self.answer_now(query, src.ip(), false, &mut out),
            };
            match outcome {
                Outcome::Reply => {
                    let _ = socket.send_to(&out, src).await;
                }
                Outcome::Drop => {}
                Outcome::Upstream => {
                    let front = self.clone();
                    let socket = socket.clone();
                    let query = query.to_vec();
                    tokio::spawn(async move {
                        let mut out = Vec::new();
                        if front.answer(&query, src.ip(), false, &mut out).await == Outcome::Reply {
                            let _ = socket.send_to(&out, src).await;
                        }
                    });
                }
            }
        }
    }

    async fn tcp_loop(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let limit = Arc::new(Semaphore::new(TCP_MAX_CONNECTIONS));
        loop {
            let Ok(permit) = limit.clone().acquire_owned().await else {
                return Ok(());
            };
            let (stream, src) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let front = self.clone();
            tokio::spawn(async move {
                let _ = front.tcp_connection(stream, src).await;
                drop(permit);
            });
        }
    }

    async fn tcp_connection(self, mut stream: TcpStream, src: SocketAddr) -> std::io::Result<()> {
        let client = src.ip();
        let _ = stream.set_nodelay(true);
        let mut out = Vec::with_capacity(4_096);
        loop {
            let mut len = [0u8; 2];
            match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
                Ok(Ok(_)) => {}
                _ => return Ok(()),
            }
            let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
            match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query)).await {
                Ok(Ok(_)) => {}
                _ => return Ok(()),
            }
            let outcome = match self.notify(&query, src, &mut out) {
                Some(o) => o,
                None => match self.answer_now(&query, client, true, &mut out) {
                    Outcome::Upstream => self.answer(&query, client, true, &mut out).await,
                    o => o,
                },
            };
            if outcome != Outcome::Reply {
                // DROP over TCP: close, as BIND does.
                return Ok(());
            }
            let len = u16::try_from(out.len())
                .map_err(|_| std::io::Error::other("answer over 64 KiB"))?;
            let mut framed = Vec::with_capacity(out.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&out);
            stream.write_all(&framed).await?;
        }
    }
}
