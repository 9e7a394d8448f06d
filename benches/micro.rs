//! Micro-benchmarks (criterion) of the functions on ztunnel's hot paths, in process:
//!
//! - `authz`: [`ProxyState::authorize`](ambient::ztunnel::state::ProxyState::authorize)
//!   against 10,000 policies, worst and typical cases;
//! - `xds_workloads`: 10,000 workloads applied through the `ADDRESS_TYPE` handler the xDS client
//!   calls (protobuf decoding included), as one batch and as single updates;
//! - `hbone`: a stream opened on a pooled mTLS HTTP/2 connection to an in-process HBONE server
//!   over loopback, with a 1-byte exchange and close; and the first connection's cost.
//!
//! `cargo bench --bench micro` measures; `cargo test --benches` runs each benchmark once as a
//! smoke test (criterion's test mode). A name filter narrows the run:
//! `cargo bench --bench micro -- authz`.

#[path = "micro/authz.rs"]
mod authz;
#[path = "micro/hbone.rs"]
mod hbone;
#[path = "micro/xds.rs"]
mod xds;

use criterion::{criterion_group, criterion_main};

criterion_group!(benches, authz::bench, xds::bench, hbone::bench);
criterion_main!(benches);
