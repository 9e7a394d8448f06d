//! The load tools, run inside the pods as `<bench executable> __tool <tool> ...`: the pods run
//! commands of this machine, so the bench binary itself is the server and the clients, and both
//! paths are driven by exactly the same code. Every client prints one JSON line of results.
//!
//! - `serve ECHO_PORT HTTP_PORT`: an echo server and a fixed HTTP/1.1 keep-alive responder
//!   (for wrk), on a tokio runtime with one worker per CPU so that the server is not what limits
//!   the direct baseline with 8 clients.
//! - `rr ADDR SIZE SECONDS`: request/response of SIZE bytes on one long-lived connection.
//! - `crr ADDR CLIENTS SECONDS`: connect, send 64 bytes, read the 64-byte answer, close, in a
//!   loop, from CLIENTS threads. The client closes first (as an HTTP/1.1 client does), so
//!   TIME_WAIT sockets stay on the client side and, through the mesh, in the ztunnels.
//! - `hold ADDR COUNT`: opens COUNT connections, checks each end to end with a 1-byte echo,
//!   prints a line, and holds them until stdin closes.
//! - `relay LISTEN TARGET`: a plain TCP relay on one thread, for measuring by hand the floor any
//!   node proxy has on this machine: two relays (client pod, server pod) add the same four
//!   socket hops as two ztunnels, with no TLS, HTTP/2, policy or telemetry (docs/benchmarks.md).
//!
//! Clients use blocking std sockets with TCP_NODELAY: the simplest loop has the least overhead
//! of its own, and the same overhead on both paths.

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;

pub const ECHO_PORT: u16 = 7000;
pub const HTTP_PORT: u16 = 8080;
pub const IPERF_PORT: u16 = 5201;
/// The request and the answer of the connection-rate test.
const CRR_SIZE: usize = 64;
/// A stalled read or connect is an error, not a hang.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const HTTP_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n";

/// Runs the tool named by `args[0]`; returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    let arg = |i: usize| -> &str { args.get(i).map(String::as_str).unwrap_or_else(|| usage()) };
    let num = |i: usize| -> u64 { arg(i).parse().unwrap_or_else(|_| usage()) };
    let addr = |i: usize| -> SocketAddr { arg(i).parse().unwrap_or_else(|_| usage()) };
    let result = match arg(0) {
        "serve" => serve(num(1) as u16, num(2) as u16),
        "rr" => rr(addr(1), num(2) as usize, Duration::from_secs_f64(arg(3).parse().unwrap_or_else(|_| usage()))),
        "crr" => crr(addr(1), num(2) as usize, Duration::from_secs_f64(arg(3).parse().unwrap_or_else(|_| usage()))),
        "hold" => hold(addr(1), num(2) as usize),
        "relay" => relay(addr(1), addr(2)),
        _ => usage(),
    };
    match result {
        Ok(value) => {
            // `hold` reported already, and its reader is gone by now.
            if !value.is_null() {
                println!("{value}");
            }
            0
        }
        Err(e) => {
            eprintln!("__tool {}: {e}", args.join(" "));
            1
        }
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: __tool serve ECHO_PORT HTTP_PORT | rr ADDR SIZE SECONDS | crr ADDR CLIENTS SECONDS | hold ADDR COUNT \
         | relay LISTEN TARGET"
    );
    std::process::exit(2)
}

fn serve(echo_port: u16, http_port: u16) -> std::io::Result<serde_json::Value> {
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?;
    runtime.block_on(async move {
        let echo = listen(echo_port)?;
        let http = listen(http_port)?;
        let echo_loop = accept_loop(echo, echo_connection);
        let http_loop = accept_loop(http, http_connection);
        tokio::try_join!(echo_loop, http_loop)?;
        Ok(json!({}))
    })
}

/// A listener with a deep backlog: the connection-rate test with 8 clients must not see
/// SYNs dropped by the server application's queue.
fn listen(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([0, 0, 0, 0], port)))?;
    socket.listen(4096)
}

async fn accept_loop<F, Fut>(listener: tokio::net::TcpListener, handler: F) -> std::io::Result<()>
where
    F: Fn(tokio::net::TcpStream) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // EMFILE and friends: back off rather than spin; the clients report the failure.
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let task = handler(stream);
        tokio::spawn(async move {
            if let Err(e) = task.await {
                eprintln!("connection: {e}");
            }
        });
    }
}

async fn echo_connection(mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

/// Answers every request (header block) with the same small response, keeping the connection.
async fn http_connection(mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut answers = 0;
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            answers += 1;
        }
        if answers > 0 {
            stream.write_all(&HTTP_RESPONSE.repeat(answers)).await?;
        }
    }
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

/// Latency percentiles of `samples` (nanoseconds), in microseconds.
fn percentiles(samples: &mut [u64]) -> serde_json::Value {
    samples.sort_unstable();
    let at = |p: f64| {
        if samples.is_empty() {
            return 0.0;
        }
        samples[((samples.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
    };
    json!({"p50_us": at(0.5), "p99_us": at(0.99), "p999_us": at(0.999)})
}

fn rr(addr: SocketAddr, size: usize, duration: Duration) -> std::io::Result<serde_json::Value> {
    let mut stream = connect(addr)?;
    let message = vec![0x5a_u8; size];
    let mut answer = vec![0u8; size];
    // Warm-up: connection setup through the mesh, caches, the server's task.
    for _ in 0..200 {
        stream.write_all(&message)?;
        stream.read_exact(&mut answer)?;
    }
    let mut samples = Vec::with_capacity(1 << 20);
    let started = Instant::now();
    while started.elapsed() < duration {
        let sent = Instant::now();
        stream.write_all(&message)?;
        stream.read_exact(&mut answer)?;
        samples.push(sent.elapsed().as_nanos() as u64);
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut result = percentiles(&mut samples);
    result["transactions"] = json!(samples.len());
    result["seconds"] = json!(seconds);
    result["rate"] = json!(samples.len() as f64 / seconds);
    result["errors"] = json!(0);
    Ok(result)
}

/// One connection of the connection-rate test; the latency covers connect to answer.
fn one_connection(addr: SocketAddr) -> std::io::Result<u64> {
    let started = Instant::now();
    let mut stream = connect(addr)?;
    stream.write_all(&[0x42; CRR_SIZE])?;
    let mut answer = [0u8; CRR_SIZE];
    stream.read_exact(&mut answer)?;
    let elapsed = started.elapsed().as_nanos() as u64;
    drop(stream);
    Ok(elapsed)
}

fn crr(addr: SocketAddr, clients: usize, duration: Duration) -> std::io::Result<serde_json::Value> {
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                let (mut samples, mut errors, mut first_error) = (Vec::with_capacity(1 << 18), 0u64, None);
                while started.elapsed() < duration {
                    match one_connection(addr) {
                        Ok(ns) => samples.push(ns),
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
                (samples, errors, first_error)
            })
        })
        .collect();
    let (mut samples, mut errors, mut first_error) = (Vec::new(), 0, None);
    for thread in threads {
        let (s, e, f) = thread.join().expect("a client thread panicked");
        samples.extend(s);
        errors += e;
        first_error = first_error.or(f);
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut result = percentiles(&mut samples);
    result["connections"] = json!(samples.len());
    result["seconds"] = json!(seconds);
    result["rate"] = json!(samples.len() as f64 / seconds);
    result["errors"] = json!(errors);
    result["first_error"] = json!(first_error);
    Ok(result)
}

fn hold(addr: SocketAddr, count: usize) -> std::io::Result<serde_json::Value> {
    let mut held = Vec::with_capacity(count);
    let (mut errors, mut first_error) = (0u64, None);
    for _ in 0..count {
        let checked = connect(addr).and_then(|mut stream| {
            stream.write_all(b"h")?;
            let mut answer = [0u8; 1];
            stream.read_exact(&mut answer)?;
            Ok(stream)
        });
        match checked {
            Ok(stream) => held.push(stream),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let line = json!({"open": held.len(), "errors": errors, "first_error": first_error});
    println!("{line}");
    std::io::stdout().flush()?;
    // Held until the bench closes our stdin (or dies, which closes it too).
    let mut rest = String::new();
    while std::io::stdin().lock().read_line(&mut rest)? > 0 {}
    drop(held);
    Ok(serde_json::Value::Null)
}

/// Relays every connection to `listen` to `target`, both ways, half-close passed on, on one
/// thread (as ztunnel runs in `ambient local`). Runs until killed.
fn relay(listen: SocketAddr, target: SocketAddr) -> std::io::Result<serde_json::Value> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(listen)?;
        let listener = socket.listen(4096)?;
        loop {
            let (mut downstream, _) = listener.accept().await?;
            tokio::spawn(async move {
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else { return };
                let _ = (downstream.set_nodelay(true), upstream.set_nodelay(true));
                let _ = tokio::io::copy_bidirectional_with_sizes(&mut downstream, &mut upstream, 65536, 65536).await;
            });
        }
    })
}
