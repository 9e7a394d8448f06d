pub mod auth;
pub mod ca;
