//! Micro-benchmarks (criterion) of the functions on ztunnel's hot paths, in process:
//!
//! - `authz`: [`ProxyState::authorize`](ambient::ztunnel::state::ProxyState::authorize)
//!   against 10,000 policies, worst and typical cases;
//! - `xds_workloads`: 10,000 workloads applied through the `ADDRESS_TYPE` handler the xDS client
//!   calls (protobuf decoding included), as one batch and as single updates;
//! - `hbone`: a stream opened on a pooled mTLS HTTP/2 connection to an in-process HBONE server
//!   over loopback, with a 1-byte exchange and close; and the first connection's cost;
//! - `record`: AES-128-GCM sealing and opening a 16 KB TLS record, aws-lc-rs and ring side by
//!   side (the reason the record ciphers come from ring).
//!
//! `cargo bench --bench micro` measures; `cargo test --benches` runs each benchmark once as a
//! smoke test (criterion's test mode). A name filter narrows the run:
//! `cargo bench --bench micro -- authz`.

#[path = "micro/authz.rs"]
mod authz;
#[path = "micro/hbone.rs"]
mod hbone;
#[path = "micro/record.rs"]
mod record;
#[path = "micro/xds.rs"]
mod xds;

use criterion::{criterion_group, criterion_main};

criterion_group!(benches, authz::bench, xds::bench, hbone::bench, record::bench);
criterion_main!(benches);
