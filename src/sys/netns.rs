//! Network namespaces: a shareable handle on one ([`Netns`]) and an executor thread that enters
//! namespaces to create sockets there ([`NetnsExecutor`]).
//!
//! A socket belongs to the namespace its creating thread was in at `socket(2)` time and keeps it
//! for life, whichever thread later uses it. `setns(2)` only moves the calling thread, so the
//! executor owns a dedicated OS thread: async tasks never change namespace, and the runtime's
//! worker threads stay in the host namespace.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread::{self, ThreadId};

use nix::sched::{CloneFlags, setns};
use nix::sys::stat::fstat;
use nix::sys::statfs::{NSFS_MAGIC, fstatfs};

use super::context;

/// The namespace of the calling thread (a thread can differ from its process after `setns`).
const CURRENT_THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// An open network namespace. Cloning shares the descriptor; the namespace lives at least as long
/// as any clone (or any socket created inside it).
#[derive(Clone)]
pub struct Netns {
    inner: Arc<NetnsFd>,
}

struct NetnsFd {
    fd: OwnedFd,
    inode: u64,
}

impl Netns {
    /// Takes ownership of a namespace descriptor (from `open(/proc/<pid>/ns/net)`, a bind mount
    /// under /run/netns, or SCM_RIGHTS). Rejects descriptors that are not network namespaces.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Netns> {
        let fs = fstatfs(&fd).map_err(|e| context(e.into(), "fstatfs on a namespace descriptor"))?;
        if fs.filesystem_type() != NSFS_MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("descriptor is not a namespace (filesystem type {:#x})", fs.filesystem_type().0),
            ));
        }
        if let Some(kind) = namespace_type(fd.as_fd())?
            && kind != CloneFlags::CLONE_NEWNET.bits()
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("descriptor is a namespace of type {kind:#x}, not a network namespace"),
            ));
        }
        let inode = fstat(&fd).map_err(|e| context(e.into(), "fstat on a namespace descriptor"))?.st_ino;
        Ok(Netns { inner: Arc::new(NetnsFd { fd, inode }) })
    }

    /// Opens a namespace by path, e.g. `/run/netns/<name>` or `/proc/<pid>/ns/net`.
    pub fn open(path: &Path) -> io::Result<Netns> {
        let file = File::open(path).map_err(|e| context(e, format!("open network namespace {}", path.display())))?;
        Netns::from_fd(file.into()).map_err(|e| context(e, path.display()))
    }

    /// The calling thread's network namespace.
    pub fn current() -> io::Result<Netns> {
        Netns::open(Path::new(CURRENT_THREAD_NETNS))
    }

    /// The namespace's inode number: equal inodes mean the same namespace (all namespaces live on
    /// the single nsfs instance).
    pub fn inode(&self) -> u64 {
        self.inner.inode
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }
}

impl PartialEq for Netns {
    fn eq(&self, other: &Self) -> bool {
        self.inode() == other.inode()
    }
}

impl Eq for Netns {}

impl fmt::Debug for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Netns(net:[{}], fd {})", self.inode(), self.inner.fd.as_raw_fd())
    }
}

/// The `CLONE_NEW*` type of a namespace descriptor, or `None` on kernels older than 4.11 that lack
/// the `NS_GET_NSTYPE` ioctl (then only the nsfs check applies).
fn namespace_type(fd: BorrowedFd<'_>) -> io::Result<Option<i32>> {
    // _IO(NSIO = 0xb7, 0x3) from <linux/nsfs.h>.
    const NS_GET_NSTYPE: u64 = (0xb7 << 8) | 0x3;
    // SAFETY: NS_GET_NSTYPE takes no argument and only returns an int; `fd` is a valid open
    // descriptor for the duration of the call because it is borrowed.
    let kind = unsafe { nix::libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    if kind >= 0 {
        return Ok(Some(kind));
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(nix::libc::ENOTTY) | Some(nix::libc::EINVAL) => Ok(None),
        _ => Err(context(error, "NS_GET_NSTYPE on a namespace descriptor")),
    }
}

/// Enters `ns` on the calling thread.
fn enter(ns: &Netns) -> io::Result<()> {
    setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| context(e.into(), format!("setns into network namespace net:[{}]", ns.inode())))
}

/// A command whose process enters `netns` before the program starts: for system tools such as
/// `iptables-restore` that act on the namespace they run in. The namespace stays open until the
/// command is dropped.
pub fn command_in(netns: &Netns, program: &str) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new(program);
    let keep_open = netns.inner.clone();
    // SAFETY: the closure runs in the forked child between fork and exec, where only
    // async-signal-safe calls are allowed: setns is a single system call, and the descriptor it
    // borrows is kept open by `keep_open`, which the closure owns. It allocates nothing.
    unsafe {
        command.pre_exec(move || {
            let fd = BorrowedFd::borrow_raw(keep_open.fd.as_raw_fd());
            setns(fd, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
        });
    }
    command
}

/// A command that runs as a local pod's process: it enters `netns`, gets a mount namespace of its
/// own in which `hosts` is bind-mounted over `/etc/hosts` (the pod's service names, as
/// `ip netns exec` does with `/etc/netns/<name>/hosts`) and a `resolv.conf` beside `hosts`, if
/// there is one, over `/etc/resolv.conf` (the host's name servers are unreachable from a pod),
/// and, if `die_with_parent`, is sent SIGTERM when the thread that started it exits.
pub fn command_in_pod(
    netns: &Netns,
    hosts: &Path,
    die_with_parent: bool,
    program: &str,
) -> io::Result<std::process::Command> {
    use nix::mount::{MsFlags, mount};
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new(program);
    let keep_open = netns.inner.clone();
    let c_path = |path: &Path| {
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))
    };
    let resolv = hosts.with_file_name("resolv.conf");
    let resolv = if resolv.exists() { Some(c_path(&resolv)?) } else { None };
    let hosts = c_path(hosts)?;
    // SAFETY: the closure runs in the forked child between fork and exec. It makes only system
    // calls (setns, unshare, mount, prctl) on values prepared before the fork (the descriptor,
    // kept open by `keep_open`, and the C strings); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            let fd = BorrowedFd::borrow_raw(keep_open.fd.as_raw_fd());
            setns(fd, CloneFlags::CLONE_NEWNET)?;
            nix::sched::unshare(CloneFlags::CLONE_NEWNS)?;
            // Our mounts must not propagate back to the host.
            mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)?;
            mount(Some(hosts.as_c_str()), "/etc/hosts", None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
            if let Some(resolv) = &resolv {
                mount(Some(resolv.as_c_str()), "/etc/resolv.conf", None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
            }
            if die_with_parent {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)?;
            }
            Ok(())
        });
    }
    Ok(command)
}

/// A job for the executor thread: it receives the outcome of entering the namespace and, when
/// that worked, runs the caller's closure and replies through its own channel.
struct Job {
    ns: Netns,
    run: Box<dyn FnOnce(io::Result<()>) + Send>,
}

/// A dedicated OS thread that enters a job's network namespace and runs the job there. Cheap to
/// clone; the thread exits when the last clone is dropped. Only namespace work belongs here:
/// host-namespace sockets are created on the caller's own thread.
#[derive(Clone)]
pub struct NetnsExecutor {
    inner: Arc<ExecutorInner>,
}

struct ExecutorInner {
    jobs: mpsc::Sender<Job>,
    thread: ThreadId,
    name: String,
}

impl NetnsExecutor {
    /// Starts the executor thread, named `name` (visible in `top -H`, at most 15 bytes kept).
    pub fn start(name: &str) -> io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let handle = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || execute(queue))
            .map_err(|e| context(e, format!("spawn netns executor thread {name}")))?;
        Ok(NetnsExecutor {
            inner: Arc::new(ExecutorInner { jobs, thread: handle.thread().id(), name: name.to_owned() }),
        })
    }

    /// Runs `f` on the executor thread inside `ns` and returns its result. A panic in `f` is
    /// returned as an error and leaves the executor usable. Dropping the future does not cancel a
    /// job already queued; its result is then dropped on the executor thread.
    pub async fn run<T: Send + 'static>(
        &self,
        ns: &Netns,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let (reply, result) = tokio::sync::oneshot::channel();
        self.submit(ns, f, move |outcome| {
            // The caller may have given up waiting; the result is then simply dropped.
            let _ = reply.send(outcome);
        })?;
        result.await.map_err(|_| self.stopped())?
    }

    /// Like [`run`](Self::run) but blocks the calling thread; for synchronous callers. Must not be
    /// called from a job running on this executor (that would wait for itself).
    pub fn run_blocking<T: Send + 'static>(
        &self,
        ns: &Netns,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        if thread::current().id() == self.inner.thread {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("run_blocking called from a job of netns executor {}", self.inner.name),
            ));
        }
        let (reply, result) = mpsc::sync_channel(1);
        self.submit(ns, f, move |outcome| {
            let _ = reply.send(outcome);
        })?;
        result.recv().map_err(|_| self.stopped())?
    }

    fn submit<T: Send + 'static>(
        &self,
        ns: &Netns,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
        reply: impl FnOnce(io::Result<T>) + Send + 'static,
    ) -> io::Result<()> {
        let name = self.inner.name.clone();
        let run = Box::new(move |entered: io::Result<()>| {
            let outcome = entered.and_then(|()| {
                catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "non-string panic".to_owned());
                    Err(io::Error::other(format!("job on netns executor {name} panicked: {message}")))
                })
            });
            reply(outcome);
        });
        self.inner.jobs.send(Job { ns: ns.clone(), run }).map_err(|_| self.stopped())
    }

    fn stopped(&self) -> io::Error {
        io::Error::other(format!("netns executor {} stopped", self.inner.name))
    }
}

impl fmt::Debug for NetnsExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetnsExecutor").field("name", &self.inner.name).finish()
    }
}

/// The executor thread's loop: enter each job's namespace unless already there, then run it.
/// Jobs must not change the thread's namespace themselves; the loop trusts its own bookkeeping
/// to save a `/proc` lookup per job.
fn execute(queue: mpsc::Receiver<Job>) {
    let mut current = Netns::current().ok().map(|ns| ns.inode());
    for job in queue {
        let entered = if current == Some(job.ns.inode()) {
            Ok(())
        } else {
            let entered = enter(&job.ns);
            current = match &entered {
                Ok(()) => Some(job.ns.inode()),
                // setns is atomic, but re-read rather than assume where a failure left us.
                Err(_) => Netns::current().ok().map(|ns| ns.inode()),
            };
            entered
        };
        (job.run)(entered);
    }
}
