//! The data path: bytes between a TCP connection and an HBONE tunnel, both ways at once.
//!
//! TCP to tunnel: reads land in a reused `BytesMut`; each read is split off and frozen into
//! the DATA frames it is sent as, so bytes are never copied after the kernel wrote them. The
//! buffer starts small and grows while reads fill it (bulk transfers), and `reserve` takes the
//! same allocation back once h2 has written the frames out. A short read gives the buffer up and
//! the next one waits for readability before allocating, so idle connections hold no buffer.
//! Frames are handed to h2 only within the send capacity it assigned, so nothing queues beyond
//! the peer's window.
//!
//! Tunnel to TCP: received frames are written to the socket as they are.
//!
//! Half-close and resets cross over as RFC 9113 section 8.5 asks: TCP EOF -> END_STREAM,
//! END_STREAM -> TCP FIN; a TCP error -> RST_STREAM(CONNECT_ERROR); a stream reset or
//! connection error -> TCP RST.

use std::future::poll_fn;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use h2::{Reason, RecvStream, SendStream};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};

use super::HboneStream;
use super::stream::{StreamParts, poll_recv_data, poll_send_capacity, send_failure};

/// First read buffer of a connection: small, as most connections carry little.
const INITIAL_BUFFER: usize = 16 * 1024;
/// Largest read buffer: enough to fill big frames on bulk transfers.
const MAX_BUFFER: usize = 256 * 1024;

/// A read shorter than this ends bulk mode and releases the buffer.
const SMALL_READ: usize = 4 * 1024;

/// Bytes moved so far, readable while the bridge runs (for live metrics) and after it failed.
#[derive(Debug, Default)]
pub struct BridgeCounters {
    /// Read from TCP and handed to the tunnel.
    pub tcp_to_hbone: AtomicU64,
    /// Received from the tunnel and written to TCP.
    pub hbone_to_tcp: AtomicU64,
}

impl BridgeCounters {
    /// (TCP to tunnel, tunnel to TCP) so far.
    pub fn totals(&self) -> (u64, u64) {
        (self.tcp_to_hbone.load(Ordering::Relaxed), self.hbone_to_tcp.load(Ordering::Relaxed))
    }
}

/// Which side failed, which decides how the other side is told.
enum Failure {
    Tcp(io::Error),
    Tunnel(io::Error),
}

/// Copies between `tcp` and `hbone` until both directions ended; returns the bytes moved
/// (TCP to tunnel, tunnel to TCP). See the module docs for half-close and reset handling.
pub async fn bridge(tcp: TcpStream, hbone: HboneStream) -> io::Result<(u64, u64)> {
    let counters = BridgeCounters::default();
    bridge_counted(tcp, hbone, &counters).await?;
    Ok(counters.totals())
}

/// [`bridge`], counting into `counters` as bytes move.
pub async fn bridge_counted(mut tcp: TcpStream, hbone: HboneStream, counters: &BridgeCounters) -> io::Result<()> {
    let StreamParts { mut send, mut recv, pending, read_closed, write_closed, slot } = hbone.into_parts();
    let outcome = {
        let (mut tcp_read, mut tcp_write) = tcp.split();
        let upstream = async {
            if write_closed {
                return Ok(());
            }
            tcp_to_tunnel(&mut tcp_read, &mut send, &counters.tcp_to_hbone).await
        };
        let downstream = tunnel_to_tcp(pending, read_closed, &mut recv, &mut tcp_write, &counters.hbone_to_tcp);
        tokio::try_join!(upstream, downstream)
    };
    let result = match outcome {
        Ok(_) => Ok(()),
        Err(Failure::Tcp(error)) => {
            send.send_reset(Reason::CONNECT_ERROR);
            Err(error)
        }
        Err(Failure::Tunnel(error)) => {
            // Closing with zero linger sends RST instead of FIN.
            let _ = tcp.set_zero_linger();
            drop(tcp);
            Err(error)
        }
    };
    // The pool slot goes when the stream does.
    drop((send, recv));
    drop(slot);
    result
}

async fn tcp_to_tunnel(
    tcp: &mut ReadHalf<'_>,
    send: &mut SendStream<Bytes>,
    counter: &AtomicU64,
) -> Result<(), Failure> {
    let mut buffer = BytesMut::new();
    let mut target = INITIAL_BUFFER;
    loop {
        // Waiting for TCP data, also notice the peer resetting the stream.
        let (read, room) = tokio::select! {
            read = read_some(tcp, &mut buffer, target) => read.map_err(Failure::Tcp)?,
            reset = poll_fn(|cx| send.poll_reset(cx)) => return match reset {
                // The peer needs no more data: this direction is done.
                Ok(Reason::NO_ERROR) => Ok(()),
                Ok(reason) => Err(Failure::Tunnel(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    format!("HBONE stream reset by the peer: {reason}"),
                ))),
                Err(error) => Err(Failure::Tunnel(super::h2_to_io(error))),
            },
        };
        if read == 0 {
            return send.send_data(Bytes::new(), true).map_err(|error| Failure::Tunnel(poll_failure(send, error)));
        }
        if read == room && target < MAX_BUFFER {
            target = (target * 2).min(MAX_BUFFER);
        }
        let mut data = buffer.split().freeze();
        if read < SMALL_READ {
            // A conversation rather than a transfer: let the buffer go (it is freed once h2
            // has written the frame), so a connection that now sits idle holds none.
            buffer = BytesMut::new();
            target = INITIAL_BUFFER;
        }
        while !data.is_empty() {
            let capacity = poll_fn(|cx| poll_send_capacity(send, cx, data.len())).await.map_err(Failure::Tunnel)?;
            let frame = data.split_to(capacity);
            let len = frame.len() as u64;
            send.send_data(frame, false).map_err(|error| Failure::Tunnel(poll_failure(send, error)))?;
            counter.fetch_add(len, Ordering::Relaxed);
        }
    }
}

/// Reads what the socket has into `buffer`; returns (bytes read, room there was). Without a
/// buffer it first waits for the socket to become readable, so an idle connection allocates
/// nothing. Refills when less than half a buffer is left; once h2 has written out (and dropped)
/// the frames split off earlier, `reserve` reuses the same allocation.
async fn read_some(tcp: &mut ReadHalf<'_>, buffer: &mut BytesMut, target: usize) -> io::Result<(usize, usize)> {
    if buffer.capacity() == 0 {
        tcp.as_ref().readable().await?;
    }
    if buffer.capacity() < target / 2 {
        buffer.reserve(target);
    }
    let room = buffer.capacity();
    Ok((tcp.read_buf(buffer).await?, room))
}

/// [`send_failure`] from outside a poll function: the reset reason if it is already known.
fn poll_failure(send: &mut SendStream<Bytes>, error: h2::Error) -> io::Error {
    let waker = futures::task::noop_waker();
    send_failure(send, &mut std::task::Context::from_waker(&waker), Some(error))
}

async fn tunnel_to_tcp(
    pending: Bytes,
    read_closed: bool,
    recv: &mut RecvStream,
    tcp: &mut WriteHalf<'_>,
    counter: &AtomicU64,
) -> Result<(), Failure> {
    if !pending.is_empty() {
        tcp.write_all(&pending).await.map_err(Failure::Tcp)?;
        counter.fetch_add(pending.len() as u64, Ordering::Relaxed);
    }
    if !read_closed {
        while let Some(data) = poll_fn(|cx| poll_recv_data(recv, cx)).await.map_err(Failure::Tunnel)? {
            tcp.write_all(&data).await.map_err(Failure::Tcp)?;
            counter.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
    }
    // END_STREAM: half-close the TCP connection.
    tcp.shutdown().await.map_err(Failure::Tcp)
}
