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
        pub mod zds {
            include!(concat!(env!("OUT_DIR"), "/istio.workload.zds.rs"));
        }
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
pub use self::istio::workload::zds;

/// Type URL of `istio.workload.Address` resources (workloads and services).
pub const ADDRESS_TYPE: &str = "type.googleapis.com/istio.workload.Address";
/// Type URL of `istio.security.Authorization` resources (L4 policies).
pub const AUTHORIZATION_TYPE: &str = "type.googleapis.com/istio.security.Authorization";

/// Key of the CA request metadata by which a node proxy asks for a certificate on behalf of a
/// pod on its node (Istio's name).
pub const IMPERSONATED_IDENTITY: &str = "ImpersonatedIdentity";

/// Wraps an encoded message as an `Any` of `type_url`.
pub fn to_any(type_url: &str, message: &impl prost::Message) -> Any {
    Any { type_url: type_url.to_string(), value: message.encode_to_vec().into() }
}

/// Serializers the generated types use (see build.rs) so their JSON reads like Istio's.
pub(crate) mod json {
    use std::net::IpAddr;

    use serde::Serializer;
    use serde::ser::SerializeSeq;

    fn ip_text(bytes: &[u8]) -> String {
        match bytes.len() {
            4 => IpAddr::from(<[u8; 4]>::try_from(bytes).expect("4 bytes")).to_string(),
            16 => IpAddr::from(<[u8; 16]>::try_from(bytes).expect("16 bytes")).to_string(),
            0 => String::new(),
            _ => format!("invalid address {bytes:?}"),
        }
    }

    pub fn ip<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&ip_text(bytes))
    }

    pub fn ips<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(list.len()))?;
        for bytes in list {
            seq.serialize_element(&ip_text(bytes))?;
        }
        seq.end()
    }

    /// A protobuf enum field by its name (`HBONE`), or its number when unknown.
    pub trait ProtoEnum: TryFrom<i32> {
        fn name(self) -> &'static str;
    }

    fn enum_text<E: ProtoEnum>(value: i32) -> String {
        E::try_from(value).map_or_else(|_| value.to_string(), |e| e.name().to_string())
    }

    pub fn enum_name<E: ProtoEnum, S: Serializer>(value: &i32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&enum_text::<E>(*value))
    }

    pub fn enum_names<E: ProtoEnum, S: Serializer>(values: &[i32], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(values.len()))?;
        for value in values {
            seq.serialize_element(&enum_text::<E>(*value))?;
        }
        seq.end()
    }

    macro_rules! proto_enums {
        ($($ty:path),* $(,)?) => {
            $(impl ProtoEnum for $ty {
                fn name(self) -> &'static str {
                    self.as_str_name()
                }
            })*
        };
    }

    use super::{security, workload};
    proto_enums!(
        workload::TunnelProtocol,
        workload::WorkloadStatus,
        workload::WorkloadType,
        workload::NetworkMode,
        workload::IpFamilies,
        workload::service::Visibility,
        workload::AppProtocol,
        workload::load_balancing::Mode,
        workload::load_balancing::HealthPolicy,
        workload::load_balancing::Scope,
        workload::application_tunnel::Protocol,
        security::Scope,
        security::Action,
    );
}
