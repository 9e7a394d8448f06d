//! `ambient ztunnel`: flags to a checked [`ZtunnelConfig`], then run until a signal.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::components::ZtunnelArgs;
use super::controlplane::listen_address;
use crate::xds::client::TokenSource;
use crate::ztunnel::admin::AdminConfig;
use crate::ztunnel::config::ZtunnelConfig;
use crate::ztunnel::run::start;

/// `--x-address`, or its port shorthand on `default_host`.
fn address(flag: &str, text: &str, port: Option<u16>, default_host: [u8; 4]) -> anyhow::Result<SocketAddr> {
    match port {
        Some(port) => Ok(SocketAddr::from((default_host, port))),
        None => listen_address(flag, text),
    }
}

pub fn config(args: ZtunnelArgs) -> anyhow::Result<ZtunnelConfig> {
    let Some(node_name) = args.node_name.filter(|n| !n.is_empty()) else {
        bail!("--node-name (or NODE_NAME) is required: ztunnel serves the pods of one node");
    };
    let Some(root_cert) = args.root_cert else {
        bail!("--root-cert is required: the control plane's and the mesh's root certificate (PEM)");
    };
    if args.wait_for_root_cert {
        wait_for_file(&root_cert);
    }
    let root_cert_pem =
        std::fs::read(&root_cert).with_context(|| format!("--root-cert {}: cannot read", root_cert.display()))?;
    if let Some(token) = &args.token_file {
        // Read now so that a wrong path fails at start, not at the first reconnect.
        std::fs::metadata(token).with_context(|| format!("--token-file {}: cannot read", token.display()))?;
    }
    let mut config = ZtunnelConfig::new(node_name, args.xds_address.clone(), root_cert_pem);
    config.ca_address = args.ca_address.unwrap_or(args.xds_address);
    config.server_name = args.server_name;
    config.token = args.token_file.map(TokenSource::File);
    config.zds_socket = args.zds_socket;
    config.admin = AdminConfig {
        admin: address("--admin-address", &args.admin_address, args.admin_port, [127, 0, 0, 1])?,
        metrics: address("--metrics-address", &args.metrics_address, args.metrics_port, [0, 0, 0, 0])?,
        readiness: address("--readiness-address", &args.readiness_address, args.readiness_port, [0, 0, 0, 0])?,
    };
    if let Some(threads) = args.worker_threads {
        if threads == 0 {
            bail!("--worker-threads must be at least 1");
        }
        config.worker_threads = threads;
    }
    config.trust_domain = args.trust_domain;
    config.cluster_id = args.cluster_id;
    config.network = args.network;
    config.access_log = args.access_log;
    config.packet_mark = args.packet_mark;
    config.cert_ttl = args.cert_ttl;
    Ok(config)
}

/// Waits until `path` exists and is not empty, saying what it waits for now and then.
pub(super) fn wait_for_file(path: &std::path::Path) {
    const POLL: std::time::Duration = std::time::Duration::from_millis(500);
    const REPORT_EVERY: u32 = 60;
    let mut polls = 0u32;
    while !std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
        if polls.is_multiple_of(REPORT_EVERY) {
            tracing::info!(path = %path.display(), "waiting for the root certificate (the control plane publishes it)");
        }
        polls = polls.wrapping_add(1);
        std::thread::sleep(POLL);
    }
}

/// How long after ready the start-up code pages are released.
const STARTUP_SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

pub fn run(args: ZtunnelArgs) -> anyhow::Result<ExitCode> {
    let config = config(args)?;
    // Without these, every pod handed over would fail later; say so now.
    crate::sys::socket::check_capabilities()
        .context("ztunnel needs CAP_NET_ADMIN and CAP_SYS_ADMIN (run as root or grant both)")?;
    match crate::sys::process::raise_fd_limit() {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit; many connections may fail"),
    }
    if let Err(e) = crate::sys::memory::tune_allocator() {
        tracing::warn!(error = %e, "cannot tune the allocator; bulk transfers cost more CPU");
    }
    let ztunnel = start(config).context("ztunnel")?;
    let mut ready = ztunnel.ready();
    // The main thread only waits for a signal; both runtimes run on their own threads.
    let signals = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    signals.block_on(async {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // Start-up code (arguments, TLS and xDS setup, the first pods and certificates) is done
        // with a little after ready: its pages need not stay mapped.
        let release_startup_pages = async {
            if ready.wait_for(|ready| *ready).await.is_ok() {
                tokio::time::sleep(STARTUP_SETTLE).await;
                match crate::sys::memory::release_startup_code_pages() {
                    Ok(bytes) => tracing::debug!(bytes, "released start-up code pages"),
                    Err(e) => tracing::warn!(error = %e, "cannot release start-up code pages"),
                }
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = release_startup_pages => {}
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
            _ = terminate.recv() => tracing::info!("terminated; stopping"),
        }
        anyhow::Ok(())
    })?;
    ztunnel.shutdown();
    Ok(ExitCode::SUCCESS)
}
