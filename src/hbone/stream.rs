//! One HBONE tunnel: the DATA of an HTTP/2 CONNECT stream as a byte stream.
//!
//! Reading pops received frames and returns their flow-control credit at once (the frame in
//! hand is bounded, so memory stays bounded by the window). Writing waits for send capacity
//! before handing a frame to h2, so h2's buffer never grows past what the peer allows. END_STREAM
//! is end of file, RST_STREAM is a connection reset; NO_ERROR resets (a peer that has finished
//! and wants nothing more) read as end of file.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use h2::{Reason, RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::h2_to_io;
use super::pool::StreamSlot;

/// An open tunnel. `AsyncRead + AsyncWrite`; `shutdown` sends END_STREAM (a TCP half-close);
/// dropping it before both directions ended resets the stream (RST_STREAM CANCEL).
pub struct HboneStream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Received bytes not yet handed to a reader.
    pending: Bytes,
    /// Headers of the 200 response (client side; empty on the server side).
    response_headers: http::HeaderMap,
    write_closed: bool,
    read_closed: bool,
    /// The pool's count of streams on the connection; released when the tunnel is dropped.
    slot: Option<StreamSlot>,
}

impl std::fmt::Debug for HboneStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HboneStream")
            .field("write_closed", &self.write_closed)
            .field("read_closed", &self.read_closed)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// The pieces of a stream, for the bridge's split data path.
pub(crate) struct StreamParts {
    pub send: SendStream<Bytes>,
    pub recv: RecvStream,
    pub pending: Bytes,
    pub read_closed: bool,
    pub write_closed: bool,
    pub slot: Option<StreamSlot>,
}

impl HboneStream {
    pub(crate) fn new(
        send: SendStream<Bytes>,
        recv: RecvStream,
        response_headers: http::HeaderMap,
        slot: Option<StreamSlot>,
    ) -> Self {
        HboneStream {
            send,
            recv,
            pending: Bytes::new(),
            response_headers,
            write_closed: false,
            read_closed: false,
            slot,
        }
    }

    /// Headers of the server's 200 response (e.g. its `baggage`); empty on the server side.
    pub fn response_headers(&self) -> &http::HeaderMap {
        &self.response_headers
    }

    /// Aborts the tunnel both ways with RST_STREAM `reason` (the peer sees a connection reset;
    /// RFC 9113 uses CONNECT_ERROR for a reset TCP connection).
    pub fn reset(&mut self, reason: Reason) {
        self.send.send_reset(reason);
        self.write_closed = true;
        self.read_closed = true;
    }

    pub(crate) fn into_parts(self) -> StreamParts {
        StreamParts {
            send: self.send,
            recv: self.recv,
            pending: self.pending,
            read_closed: self.read_closed,
            write_closed: self.write_closed,
            slot: self.slot,
        }
    }
}

/// The next received frame, `None` at end of stream. Releases the frame's flow-control credit
/// (the caller holds at most this one frame).
pub(crate) fn poll_recv_data(recv: &mut RecvStream, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
    loop {
        return match ready!(recv.poll_data(cx)) {
            None => Poll::Ready(Ok(None)),
            Some(Ok(data)) if data.is_empty() => continue,
            Some(Ok(data)) => {
                // Only fails when the stream is already gone, which the next poll reports.
                let _ = recv.flow_control().release_capacity(data.len());
                Poll::Ready(Ok(Some(data)))
            }
            Some(Err(error)) if error.reason() == Some(Reason::NO_ERROR) && !error.is_go_away() => {
                Poll::Ready(Ok(None))
            }
            Some(Err(error)) => Poll::Ready(Err(h2_to_io(error))),
        };
    }
}

/// Waits until the stream may send at least one byte; returns how many (at most `want`).
/// Reserving first and only then sending keeps h2's send buffer bounded by the peer's window.
pub(crate) fn poll_send_capacity(
    send: &mut SendStream<Bytes>,
    cx: &mut Context<'_>,
    want: usize,
) -> Poll<io::Result<usize>> {
    loop {
        let available = send.capacity();
        if available > 0 {
            return Poll::Ready(Ok(available.min(want)));
        }
        send.reserve_capacity(want);
        // `poll_capacity` only reports increases, so capacity left over from an earlier
        // assignment is read from `capacity()` above rather than waited for.
        match ready!(send.poll_capacity(cx)) {
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Poll::Ready(Err(send_failure(send, cx, Some(error)))),
            None => return Poll::Ready(Err(send_failure(send, cx, None))),
        }
    }
}

/// Why sending failed: the peer's reset reason when there is one.
pub(crate) fn send_failure(send: &mut SendStream<Bytes>, cx: &mut Context<'_>, error: Option<h2::Error>) -> io::Error {
    match send.poll_reset(cx) {
        Poll::Ready(Ok(Reason::NO_ERROR)) => {
            io::Error::new(io::ErrorKind::BrokenPipe, "HBONE stream: the peer stopped reading (RST_STREAM NO_ERROR)")
        }
        Poll::Ready(Ok(reason)) => {
            io::Error::new(io::ErrorKind::ConnectionReset, format!("HBONE stream reset by the peer: {reason}"))
        }
        Poll::Ready(Err(error)) => h2_to_io(error),
        Poll::Pending => match error {
            Some(error) => h2_to_io(error),
            None => io::Error::new(io::ErrorKind::BrokenPipe, "HBONE stream: sending side already closed"),
        },
    }
}

impl AsyncRead for HboneStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pending.is_empty() {
            if this.read_closed {
                return Poll::Ready(Ok(()));
            }
            match ready!(poll_recv_data(&mut this.recv, cx))? {
                Some(data) => this.pending = data,
                None => {
                    this.read_closed = true;
                    return Poll::Ready(Ok(()));
                }
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for HboneStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = &mut *self;
        if this.write_closed {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "HBONE stream: already shut down")));
        }
        let n = ready!(poll_send_capacity(&mut this.send, cx, buf.len()))?;
        // The generic AsyncWrite path has to copy out of the caller's slice; `bridge` avoids it.
        match this.send.send_data(Bytes::copy_from_slice(&buf[..n]), false) {
            Ok(()) => Poll::Ready(Ok(n)),
            Err(error) => Poll::Ready(Err(send_failure(&mut this.send, cx, Some(error)))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // h2's connection task writes out whatever was handed to it.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.write_closed {
            return Poll::Ready(Ok(()));
        }
        this.write_closed = true;
        match this.send.send_data(Bytes::new(), true) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(error) => Poll::Ready(Err(send_failure(&mut this.send, cx, Some(error)))),
        }
    }
}
