//! Shared fixtures for integration tests: `mod support;` in a test file, then `support::netns` (network namespaces) or
//! `support::ca` (a CA over the wire).
// Each test binary uses a different part of the fixtures.
#![allow(dead_code)]

pub mod apiserver;
pub mod ca;
pub mod netns;
pub mod validator;
