//! Shared fixtures for integration tests: `mod support;` in a test file, then `support::netns`.
// Each test binary uses a different part of the fixtures.
#![allow(dead_code)]

pub mod netns;
