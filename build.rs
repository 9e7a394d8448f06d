//! Records the git commit for `ambient version`, and compiles the wire protocols in `proto/`
//! (with protox, so no system `protoc` is needed).

use std::process::Command;

fn main() {
    compile_protos();
    // The install assets are embedded with include_dir.
    println!("cargo:rerun-if-changed=manifests");
    println!("cargo:rerun-if-changed=profiles");
    let commit = std::env::var("AMBIENT_GIT_COMMIT").ok().or_else(|| {
        let out = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| o.status.success() && !o.stdout.is_empty());
    let commit = match commit {
        Some(c) if dirty => format!("{c}-dirty"),
        Some(c) => c,
        None => "unknown".to_string(),
    };
    println!("cargo:rustc-env=AMBIENT_GIT_COMMIT={commit}");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=AMBIENT_TARGET={target}");
    println!("cargo:rerun-if-env-changed=AMBIENT_GIT_COMMIT");
    for path in [".git/HEAD", ".git/index", ".git/refs"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

/// The protocol files, compiled into Rust types (prost) and gRPC stubs (tonic).
const PROTOS: &[&str] = &[
    "proto/envoy/discovery.proto",
    "proto/istio/workload.proto",
    "proto/istio/authorization.proto",
    "proto/istio/ca.proto",
    "proto/istio/zds.proto",
];

const SERDE_IP: &str = "#[serde(serialize_with = \"crate::xds::proto::json::ip\")]";
const SERDE_IPS: &str = "#[serde(serialize_with = \"crate::xds::proto::json::ips\")]";

fn serde_enum(path: &str) -> String {
    format!("#[serde(serialize_with = \"crate::xds::proto::json::enum_name::<crate::xds::proto::{path}, _>\")]")
}

fn serde_enums(path: &str) -> String {
    format!("#[serde(serialize_with = \"crate::xds::proto::json::enum_names::<crate::xds::proto::{path}, _>\")]")
}

fn compile_protos() {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = match protox::compile(PROTOS, ["proto"]) {
        Ok(descriptors) => descriptors,
        Err(error) => panic!("invalid protocol file: {error:?}"),
    };
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        // Our own google.protobuf types, so that `Any.value` can be `Bytes`: a resource encoded
        // once is then shared by every client's response without copying.
        .compile_well_known_types(true)
        .bytes(".google.protobuf.Any.value")
        // JSON for the debug endpoints: IPs as text and enums by name, not raw numbers.
        .type_attribute(".istio", "#[derive(serde::Serialize)]")
        .type_attribute(".google.protobuf", "#[derive(serde::Serialize)]")
        .field_attribute(".istio.workload.Workload.addresses", SERDE_IPS)
        .field_attribute(".istio.workload.NetworkAddress.address", SERDE_IP)
        .field_attribute(".istio.security.Address.address", SERDE_IP)
        .field_attribute(".istio.workload.Workload.tunnel_protocol", serde_enum("workload::TunnelProtocol"))
        .field_attribute(".istio.workload.Workload.status", serde_enum("workload::WorkloadStatus"))
        .field_attribute(".istio.workload.Workload.workload_type", serde_enum("workload::WorkloadType"))
        .field_attribute(".istio.workload.Workload.network_mode", serde_enum("workload::NetworkMode"))
        .field_attribute(".istio.workload.Service.ip_families", serde_enum("workload::IpFamilies"))
        .field_attribute(".istio.workload.Service.visibility", serde_enum("workload::service::Visibility"))
        .field_attribute(".istio.workload.Port.app_protocol", serde_enum("workload::AppProtocol"))
        .field_attribute(".istio.workload.LoadBalancing.mode", serde_enum("workload::load_balancing::Mode"))
        .field_attribute(
            ".istio.workload.LoadBalancing.health_policy",
            serde_enum("workload::load_balancing::HealthPolicy"),
        )
        .field_attribute(
            ".istio.workload.LoadBalancing.routing_preference",
            serde_enums("workload::load_balancing::Scope"),
        )
        .field_attribute(
            ".istio.workload.ApplicationTunnel.protocol",
            serde_enum("workload::application_tunnel::Protocol"),
        )
        .field_attribute(".istio.security.Authorization.scope", serde_enum("security::Scope"))
        .field_attribute(".istio.security.Authorization.action", serde_enum("security::Action"))
        .compile_fds(descriptors)
        .expect("generating code from the protocol files");
}
