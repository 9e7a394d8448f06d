//! TLS record encryption, the per-byte cost of every HBONE byte: AES-128-GCM sealing and
//! opening a full 16 KB record with aws-lc-rs and with ring, side by side (the provider takes
//! its record ciphers from ring, see `ambient::tls::provider`).

use criterion::{BenchmarkId, Criterion, Throughput};

/// The largest TLS record payload.
const RECORD: usize = 16 * 1024;

pub fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_aes128gcm_16k");
    group.throughput(Throughput::Bytes(RECORD as u64));
    let key = [7u8; 16];
    let nonce = [9u8; 12];

    let aws = aws_lc_rs::aead::LessSafeKey::new(
        aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_128_GCM, &key).unwrap(),
    );
    let ring_key = ring::aead::LessSafeKey::new(ring::aead::UnboundKey::new(&ring::aead::AES_128_GCM, &key).unwrap());
    let mut buffer = vec![0x5a_u8; RECORD];
    group.bench_function(BenchmarkId::new("seal", "aws-lc-rs"), |b| {
        b.iter(|| {
            let nonce = aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce);
            aws.seal_in_place_separate_tag(nonce, aws_lc_rs::aead::Aad::empty(), &mut buffer).unwrap()
        })
    });
    group.bench_function(BenchmarkId::new("seal", "ring"), |b| {
        b.iter(|| {
            let nonce = ring::aead::Nonce::assume_unique_for_key(nonce);
            ring_key.seal_in_place_separate_tag(nonce, ring::aead::Aad::empty(), &mut buffer).unwrap()
        })
    });

    // Opening needs a valid tag: seal once, then open a fresh copy each time.
    let sealed = {
        let mut data = vec![0x5a_u8; RECORD];
        let n = ring::aead::Nonce::assume_unique_for_key(nonce);
        let tag = ring_key.seal_in_place_separate_tag(n, ring::aead::Aad::empty(), &mut data).unwrap();
        data.extend_from_slice(tag.as_ref());
        data
    };
    let mut scratch = sealed.clone();
    group.bench_function(BenchmarkId::new("open", "aws-lc-rs"), |b| {
        b.iter(|| {
            scratch.copy_from_slice(&sealed);
            let n = aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce);
            assert_eq!(aws.open_in_place(n, aws_lc_rs::aead::Aad::empty(), &mut scratch).unwrap().len(), RECORD);
        })
    });
    group.bench_function(BenchmarkId::new("open", "ring"), |b| {
        b.iter(|| {
            scratch.copy_from_slice(&sealed);
            let n = ring::aead::Nonce::assume_unique_for_key(nonce);
            assert_eq!(ring_key.open_in_place(n, ring::aead::Aad::empty(), &mut scratch).unwrap().len(), RECORD);
        })
    });
    group.finish();
}
