//! `ambient controlplane`: flags to a checked [`ControlplaneConfig`], then run until a signal.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::components::{ConfigSourceKind, ControlplaneArgs};
use crate::config::SourceConfig;
use crate::config::files::FilesConfig;
use crate::config::kube::KubeConfig;
use crate::controlplane::ca::ServiceAccountRef;
use crate::controlplane::run::{CaConfig, CaRootSource, ControlplaneConfig, start};
use crate::controlplane::translate::TranslateConfig;
use crate::mesh::MeshConfig;

/// Reads a listen address: `host:port`, `[v6]:port`, or `:port` for every interface.
pub(super) fn listen_address(flag: &str, text: &str) -> anyhow::Result<SocketAddr> {
    let text = if text.starts_with(':') { format!("[::]{text}") } else { text.to_string() };
    let mut addresses =
        text.to_socket_addrs().with_context(|| format!("{flag} {text:?} is not a host:port address"))?;
    addresses.next().with_context(|| format!("{flag} {text:?} resolves to no address"))
}

fn config(args: ControlplaneArgs) -> anyhow::Result<ControlplaneConfig> {
    let mesh = MeshConfig::new(&args.trust_domain, &args.root_namespace).with_context(|| {
        format!("--trust-domain {:?} / --root-namespace {:?}", args.trust_domain, args.root_namespace)
    })?;
    let source = match args.config_source {
        ConfigSourceKind::Files => SourceConfig::Files(FilesConfig::new(args.config.clone())),
        ConfigSourceKind::Kube => SourceConfig::Kube(KubeConfig {
            context: args.context.clone(),
            kubeconfig: args.kubeconfig.clone(),
            kinds: None,
        }),
    };
    let root = match (&args.ca_cert, &args.ca_key, args.config_source, &args.state_dir) {
        (Some(cert), Some(key), _, _) => CaRootSource::Files {
            cert: cert.clone(),
            key: key.clone(),
            chain: args.ca_chain.clone(),
            root: args.ca_root.clone(),
        },
        (_, _, ConfigSourceKind::Kube, _) => {
            CaRootSource::Secret { namespace: args.root_namespace.clone(), name: args.ca_secret.clone() }
        }
        (_, _, ConfigSourceKind::Files, Some(dir)) => CaRootSource::StateDir(dir.clone()),
        (_, _, ConfigSourceKind::Files, None) => bail!(
            "the CA needs a root: pass --state-dir DIR (a root is generated there once and kept), or --ca-cert and --ca-key"
        ),
    };
    let node_proxies = if args.trusted_node_accounts.is_empty() {
        None
    } else {
        let parsed: Result<Vec<ServiceAccountRef>, _> =
            args.trusted_node_accounts.iter().map(|text| text.parse::<ServiceAccountRef>()).collect();
        Some(parsed.context("--trusted-node-accounts")?)
    };
    if args.tokens_file.is_some() && args.config_source == ConfigSourceKind::Kube {
        bail!("--tokens-file is for --config-source files; in kube mode callers present Kubernetes tokens");
    }
    Ok(ControlplaneConfig {
        source,
        translate: TranslateConfig {
            cluster_id: args.cluster_id,
            network: String::new(),
            domain_suffix: args.domain_suffix,
            root_namespace: args.root_namespace.clone(),
        },
        mesh,
        xds_address: listen_address("--xds-address", &args.xds_address)?,
        debug_address: listen_address("--debug-address", &args.debug_address)?,
        ca: CaConfig {
            source: root,
            cert_ttl: args.cert_ttl,
            max_cert_ttl: args.max_cert_ttl,
            node_proxies,
            server_names: args.server_names,
            root_cert_configmap: match (args.root_cert_configmap, args.config_source) {
                (Some(name), ConfigSourceKind::Kube) if !name.is_empty() => Some(name),
                (Some(name), ConfigSourceKind::Files) if !name.is_empty() => {
                    bail!(
                        "--root-cert-configmap is for --config-source kube; in files mode the root is in the state dir"
                    )
                }
                _ => None,
            },
        },
        tokens_file: args.tokens_file,
    })
}

pub fn run(args: ControlplaneArgs) -> anyhow::Result<ExitCode> {
    let config = config(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut controlplane = start(config).await?;
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = controlplane.wait() => result?,
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
            _ = terminate.recv() => tracing::info!("terminated; stopping"),
        }
        controlplane.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}
