//! SOCK_SEQPACKET unix sockets on tokio, with descriptor passing (SCM_RIGHTS). Each `send` is one
//! datagram, delivered whole and in order, with the descriptors attached to it.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use socket2::{Domain, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::context;

/// Largest datagram `recv` accepts; a longer one is consumed and reported as `InvalidData`.
pub const MAX_DATAGRAM: usize = 64 * 1024;
/// Most descriptors `recv` accepts with one datagram; more are closed and reported as `InvalidData`.
pub const MAX_FDS: usize = 8;

/// The kernel's cap on descriptors per message (SCM_MAX_FD). Control space for that many means
/// the kernel never truncates the descriptor list (MSG_CTRUNC), which would make nix refuse to
/// hand over, and so leak, the descriptors that did fit.
const SCM_MAX_FD: usize = 253;

const LISTEN_BACKLOG: i32 = 128;
/// Pause before retrying a connect refused with EAGAIN (the listener's backlog is full).
const CONNECT_RETRY: Duration = Duration::from_millis(10);

fn seqpacket_socket() -> io::Result<Socket> {
    // socket2 adds SOCK_CLOEXEC on Linux; nonblocking because tokio drives the socket.
    Socket::new(Domain::UNIX, Type::SEQPACKET.nonblocking(), None)
}

/// Registers an owned socket with the current tokio runtime's reactor.
fn register(socket: Socket) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: `Socket` owns its descriptor and only closes it on drop, so the descriptor stays
    // open and the same for as long as the AsyncFd owns the socket; nothing here replaces it.
    unsafe { AsyncFd::register(socket) }.map_err(io::Error::from)
}

/// A listening SOCK_SEQPACKET unix socket.
#[derive(Debug)]
pub struct SeqpacketListener {
    fd: AsyncFd<Socket>,
    path: PathBuf,
}

impl SeqpacketListener {
    /// Binds and listens on `path` (which must not exist). Needs a tokio runtime.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let bind = || -> io::Result<Socket> {
            let socket = seqpacket_socket()?;
            socket.bind(&SockAddr::unix(path)?)?;
            socket.listen(LISTEN_BACKLOG)?;
            Ok(socket)
        };
        let socket = bind().map_err(|e| context(e, format!("bind seqpacket socket {}", path.display())))?;
        Ok(SeqpacketListener { fd: register(socket)?, path: path.to_owned() })
    }

    /// Waits for the next connection.
    pub async fn accept(&self) -> io::Result<SeqpacketStream> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|listener| listener.get_ref().accept()) {
                Ok(Ok((socket, _peer))) => {
                    socket.set_nonblocking(true)?;
                    return SeqpacketStream::from_socket(socket);
                }
                Ok(Err(e)) => return Err(context(e, format!("accept on {}", self.path.display()))),
                Err(_would_block) => continue,
            }
        }
    }

    /// The path the listener was bound to.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A connected SOCK_SEQPACKET unix socket. `send` and `recv` take `&self`: one task may send
/// while another receives.
#[derive(Debug)]
pub struct SeqpacketStream {
    fd: AsyncFd<Socket>,
}

impl SeqpacketStream {
    /// Connects to the listener at `path`.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let address = SockAddr::unix(path)?;
        let socket = seqpacket_socket()?;
        loop {
            match socket.connect(&address) {
                Ok(()) => break,
                // A full backlog on a nonblocking unix socket answers EAGAIN instead of waiting.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => tokio::time::sleep(CONNECT_RETRY).await,
                Err(e) => return Err(context(e, format!("connect to seqpacket socket {}", path.display()))),
            }
        }
        SeqpacketStream::from_socket(socket)
    }

    /// A connected pair, e.g. for tests. Needs a tokio runtime.
    pub fn pair() -> io::Result<(Self, Self)> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::SEQPACKET.nonblocking(), None)?;
        Ok((SeqpacketStream::from_socket(a)?, SeqpacketStream::from_socket(b)?))
    }

    fn from_socket(socket: Socket) -> io::Result<Self> {
        Ok(SeqpacketStream { fd: register(socket)? })
    }

    /// Sends `data` as one datagram with `fds` attached. Empty datagrams are refused: the
    /// receiving side could not tell one from the end of the stream.
    pub async fn send(&self, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        if data.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "seqpacket send: empty datagram"));
        }
        let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let rights = [ControlMessage::ScmRights(&raw)];
        let control: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &rights };
        let iov = [IoSlice::new(data)];
        loop {
            let mut guard = self.fd.writable().await?;
            let sent = guard.try_io(|socket| {
                // MSG_NOSIGNAL: a closed peer is an EPIPE error, not a process-killing SIGPIPE.
                sendmsg::<()>(socket.as_raw_fd(), &iov, control, MsgFlags::MSG_NOSIGNAL, None).map_err(io::Error::from)
            });
            match sent {
                Ok(Ok(n)) if n == data.len() => return Ok(()),
                Ok(Ok(n)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("seqpacket send: {n} of {} bytes sent", data.len()),
                    ));
                }
                Ok(Err(e)) => return Err(context(e, "seqpacket send")),
                Err(_would_block) => continue,
            }
        }
    }

    /// Receives the next datagram and the descriptors attached to it (close-on-exec). `None` when
    /// the peer closed the connection. A datagram longer than [`MAX_DATAGRAM`] or carrying more
    /// than [`MAX_FDS`] descriptors is consumed, its descriptors closed, and reported as
    /// `InvalidData`; the stream stays usable.
    pub async fn recv(&self) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
        let mut data = vec![0u8; MAX_DATAGRAM];
        let mut control = nix::cmsg_space!([RawFd; SCM_MAX_FD]);
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|socket| receive(socket.as_raw_fd(), &mut data, &mut control)) {
                Ok(Ok(Received { len: 0, fds, .. })) if fds.is_empty() => return Ok(None),
                Ok(Ok(Received { len, fds, flags })) => {
                    if flags.contains(MsgFlags::MSG_TRUNC) {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("seqpacket recv: datagram longer than {MAX_DATAGRAM} bytes dropped"),
                        ));
                    }
                    if fds.len() > MAX_FDS || flags.contains(MsgFlags::MSG_CTRUNC) {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("seqpacket recv: datagram with more than {MAX_FDS} descriptors dropped"),
                        ));
                    }
                    data.truncate(len);
                    data.shrink_to_fit();
                    return Ok(Some((data, fds)));
                }
                Ok(Err(e)) => return Err(context(e, "seqpacket recv")),
                Err(_would_block) => continue,
            }
        }
    }
}

struct Received {
    len: usize,
    fds: Vec<OwnedFd>,
    flags: MsgFlags,
}

fn receive(socket: RawFd, data: &mut [u8], control: &mut [u8]) -> io::Result<Received> {
    let mut iov = [IoSliceMut::new(data)];
    let message = recvmsg::<()>(socket, &mut iov, Some(control), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fds = Vec::new();
    for cmsg in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: the kernel installed these descriptors in our table for this message and
            // nothing else refers to them; owning them here ensures each is closed exactly once.
            fds.extend(raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    Ok(Received { len: message.bytes, fds, flags: message.flags })
}
