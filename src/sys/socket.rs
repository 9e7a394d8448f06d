//! TCP sockets created inside network namespaces, and the socket options the proxy needs
//! (SO_MARK, IP_TRANSPARENT, SO_ORIGINAL_DST, TCP_NODELAY).

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::AsFd;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::context;
use super::netns::{Netns, NetnsExecutor};

/// Listen backlog for proxy listeners: bursts of new connections must not be dropped.
pub const LISTEN_BACKLOG: i32 = 1024;

/// Creates a listener inside `ns` (SO_REUSEADDR, IP_TRANSPARENT when asked, backlog
/// [`LISTEN_BACKLOG`]) and registers it with the caller's tokio runtime. The returned future
/// borrows nothing, so it can be spawned.
pub fn tcp_listener_in(
    exec: &NetnsExecutor,
    ns: &Netns,
    addr: SocketAddr,
    transparent: bool,
) -> impl Future<Output = io::Result<TcpListener>> + Send + 'static + use<> {
    let exec = exec.clone();
    let ns = ns.clone();
    async move {
        let listener = exec
            .run(&ns, move || bind_listener(addr, transparent))
            .await
            .map_err(|e| context(e, format!("in network namespace net:[{}]", ns.inode())))?;
        TcpListener::from_std(listener)
    }
}

/// Creates a nonblocking listener in the calling thread's namespace (see [`tcp_listener_in`]).
pub fn bind_listener(addr: SocketAddr, transparent: bool) -> io::Result<std::net::TcpListener> {
    let socket = new_tcp_socket(addr).map_err(|e| context(e, format!("create listener socket for {addr}")))?;
    socket.set_reuse_address(true).map_err(|e| context(e, format!("set SO_REUSEADDR on listener {addr}")))?;
    if transparent {
        set_transparent(&socket, addr).map_err(|e| context(e, format!("set IP_TRANSPARENT on listener {addr}")))?;
    }
    socket.bind(&addr.into()).map_err(|e| context(e, format!("bind {addr}")))?;
    socket.listen(LISTEN_BACKLOG).map_err(|e| context(e, format!("listen on {addr}")))?;
    Ok(socket.into())
}

/// How an outbound socket is prepared before connecting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    /// SO_MARK, so that capture rules let the proxy's own traffic through.
    pub mark: Option<u32>,
    /// Source address to bind before connecting (with `transparent`, may be non-local).
    pub bind: Option<SocketAddr>,
    /// IP_TRANSPARENT: allows binding a source address the namespace does not own.
    pub transparent: bool,
}

/// Source ports for connections a proxy opens to its pod's own application, handed out in turn.
///
/// A proxy that closes first (the client closed, and the FIN is passed on) leaves a TIME_WAIT
/// entry on its side of the one (pod IP, app port) pair. With kernel-chosen ports, connect()
/// may reuse such an entry only with `tcp_tw_reuse=1` (the default, 2, allows it for loopback
/// addresses only, and pod IPs are not), so past ~28,000 connections a minute every connect
/// fails. For an explicitly bound port the kernel does take the TIME_WAIT entry over when
/// timestamps are on (PAWS protects the new connection from old segments), whatever the
/// sysctl. A port still in use towards the same destination fails with `EADDRNOTAVAIL`, and the
/// caller moves to the next one.
#[derive(Debug)]
pub struct SourcePorts {
    next: std::sync::atomic::AtomicU32,
}

impl SourcePorts {
    /// Linux's default ephemeral range (`ip_local_port_range`), where clients' ports live anyway.
    pub const FIRST: u16 = 32768;
    pub const LAST: u16 = 60999;
    /// How many ports a connect tries before leaving the choice to the kernel.
    pub const ATTEMPTS: usize = 16;
    const SPAN: u32 = (Self::LAST - Self::FIRST) as u32 + 1;

    /// Starts at a random point of the range, so that restarts do not replay the same ports.
    pub fn new() -> Self {
        let mut seed = [0u8; 4];
        // Without randomness, start at the beginning: the ports are still handed out in turn.
        let _ = aws_lc_rs::rand::fill(&mut seed);
        SourcePorts { next: std::sync::atomic::AtomicU32::new(u32::from_ne_bytes(seed) % Self::SPAN) }
    }

    /// The next port of the range.
    pub fn next(&self) -> u16 {
        let offset = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % Self::SPAN;
        Self::FIRST + offset as u16
    }
}

impl Default for SourcePorts {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether a connect failed because its source port is taken (try another port).
pub fn source_port_taken(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse)
}

/// Connects to `dst` from a socket created inside `ns` (or in the caller's namespace for
/// `None`), with SO_MARK when given and TCP_NODELAY. Only the socket creation runs on the
/// executor; the connect itself is driven by the caller's runtime.
pub async fn tcp_connect_in(
    exec: &NetnsExecutor,
    ns: Option<&Netns>,
    dst: SocketAddr,
    mark: Option<u32>,
) -> io::Result<TcpStream> {
    tcp_connect_with(exec, ns, dst, ConnectOptions { mark, ..ConnectOptions::default() }).await
}

/// [`tcp_connect_in`] with every option.
pub async fn tcp_connect_with(
    exec: &NetnsExecutor,
    ns: Option<&Netns>,
    dst: SocketAddr,
    options: ConnectOptions,
) -> io::Result<TcpStream> {
    let socket = match ns {
        Some(ns) => exec
            .run(ns, move || connect_socket(dst, &options))
            .await
            .map_err(|e| context(e, format!("in network namespace net:[{}]", ns.inode())))?,
        None => connect_socket(dst, &options)?,
    };
    let stream =
        TcpSocket::from_std_stream(socket).connect(dst).await.map_err(|e| context(e, format!("connect to {dst}")))?;
    Ok(stream)
}

/// An unconnected, nonblocking TCP socket for `dst`, options applied (caller's namespace).
fn connect_socket(dst: SocketAddr, options: &ConnectOptions) -> io::Result<std::net::TcpStream> {
    let socket = new_tcp_socket(dst).map_err(|e| context(e, format!("create socket to connect to {dst}")))?;
    if let Some(mark) = options.mark {
        socket.set_mark(mark).map_err(|e| context(e, format!("set SO_MARK {mark} on socket to {dst}")))?;
    }
    socket.set_tcp_nodelay(true).map_err(|e| context(e, format!("set TCP_NODELAY on socket to {dst}")))?;
    if options.transparent {
        set_transparent(&socket, dst).map_err(|e| context(e, format!("set IP_TRANSPARENT on socket to {dst}")))?;
    }
    if let Some(source) = options.bind {
        if source.port() != 0 {
            // A chosen port may still have TIME_WAIT entries: see [`SourcePorts`].
            socket.set_reuse_address(true).map_err(|e| context(e, format!("set SO_REUSEADDR on socket to {dst}")))?;
        }
        socket.bind(&source.into()).map_err(|e| context(e, format!("bind source {source} to connect to {dst}")))?;
    }
    Ok(socket.into())
}

fn new_tcp_socket(addr: SocketAddr) -> io::Result<Socket> {
    // CLOEXEC is set by socket2 on Linux; nonblocking because tokio drives the socket.
    Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), Some(Protocol::TCP))
}

fn set_transparent(socket: &Socket, addr: SocketAddr) -> io::Result<()> {
    match addr {
        SocketAddr::V4(_) => socket.set_ip_transparent_v4(true),
        SocketAddr::V6(_) => socket.set_ip_transparent_v6(true),
    }
}

/// The destination the client originally dialed, for a connection captured by a NAT REDIRECT
/// rule (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST). Without a NAT translation (TPROXY, or a direct
/// connection) the local address is the original destination and is returned instead.
/// IPv4-mapped IPv6 addresses are returned as IPv4.
pub fn original_dst(stream: &TcpStream) -> io::Result<SocketAddr> {
    let local = unmap(stream.local_addr().map_err(|e| context(e, "local address of a captured connection"))?);
    let socket = SockRef::from(stream);
    let translated = match local {
        SocketAddr::V4(_) => socket.original_dst_v4(),
        SocketAddr::V6(_) => socket.original_dst_v6(),
    };
    match translated {
        Ok(addr) => addr.as_socket().map(unmap).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("SO_ORIGINAL_DST of connection to {local} is not an IP address"),
            )
        }),
        // ENOENT: conntrack has no NAT entry; ENOPROTOOPT: no conntrack for this family at all.
        Err(e) if matches!(e.raw_os_error(), Some(nix::libc::ENOENT) | Some(nix::libc::ENOPROTOOPT)) => Ok(local),
        Err(e) => Err(context(e, format!("SO_ORIGINAL_DST of connection to {local}"))),
    }
}

fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, v6.port())),
            None => addr,
        },
        v4 => v4,
    }
}

/// TCP_NODELAY on any TCP socket.
pub fn set_nodelay(socket: &impl AsFd, nodelay: bool) -> io::Result<()> {
    SockRef::from(socket).set_tcp_nodelay(nodelay).map_err(|e| context(e, "set TCP_NODELAY"))
}

/// Makes closing `socket` send a reset instead of a FIN (zero linger: the close never blocks):
/// for connections that are refused, so the client sees the refusal at once.
pub fn reset_on_close(socket: &impl AsFd) -> io::Result<()> {
    SockRef::from(socket).set_linger(Some(std::time::Duration::ZERO)).map_err(|e| context(e, "set SO_LINGER 0"))
}

/// SO_MARK on any socket (needs CAP_NET_ADMIN).
pub fn set_mark(socket: &impl AsFd, mark: u32) -> io::Result<()> {
    SockRef::from(socket).set_mark(mark).map_err(|e| context(e, format!("set SO_MARK {mark}")))
}

/// Fails early, with a clear error, when the process lacks what in-pod proxying needs: setting
/// SO_MARK (CAP_NET_ADMIN) and entering namespaces (CAP_SYS_ADMIN).
pub fn check_capabilities() -> io::Result<()> {
    let probe =
        Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).map_err(|e| context(e, "create probe socket"))?;
    probe.set_mark(1).map_err(|e| context(e, "set SO_MARK on a probe socket (needs CAP_NET_ADMIN)"))?;
    let own = Netns::current()?;
    let inode = own.inode();
    // Entering our own namespace changes nothing but proves we may call setns. A scoped thread
    // keeps even that away from the caller's thread.
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                nix::sched::setns(own.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                    context(e.into(), format!("setns into own network namespace net:[{inode}] (needs CAP_SYS_ADMIN)"))
                })
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("capability probe thread panicked")))
    })
}
