//! Generated protocol types (from `proto/`, see build.rs), one module per protobuf package.
//! Package and message names follow Istio's and Envoy's, so the type URLs match theirs.

#![allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]

pub mod google {
    pub mod protobuf {
        include!(concat!(env!("OUT_DIR"), "/google.protobuf.rs"));
    }
}

pub mod envoy {
    pub mod service {
        pub mod discovery {
            pub mod v3 {
                include!(concat!(env!("OUT_DIR"), "/envoy.service.discovery.v3.rs"));
            }
        }
    }
}

pub mod istio {
    pub mod workload {
        include!(concat!(env!("OUT_DIR"), "/istio.workload.rs"));
    }
    pub mod security {
        include!(concat!(env!("OUT_DIR"), "/istio.security.rs"));
    }
    pub mod v1 {
        pub mod auth {
            include!(concat!(env!("OUT_DIR"), "/istio.v1.auth.rs"));
        }
    }
}

pub use self::envoy::service::discovery::v3 as discovery;
pub use self::google::protobuf::Any;
pub use self::istio::security;
pub use self::istio::v1::auth as ca;
pub use self::istio::workload;

/// Type URL of `istio.workload.Address` resources (workloads and services).
pub const ADDRESS_TYPE: &str = "type.googleapis.com/istio.workload.Address";
/// Type URL of `istio.security.Authorization` resources (L4 policies).
pub const AUTHORIZATION_TYPE: &str = "type.googleapis.com/istio.security.Authorization";

/// Wraps an encoded message as an `Any` of `type_url`.
pub fn to_any(type_url: &str, message: &impl prost::Message) -> Any {
    Any { type_url: type_url.to_string(), value: message.encode_to_vec().into() }
}
