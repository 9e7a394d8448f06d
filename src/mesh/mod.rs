//! Mesh index
