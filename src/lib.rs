//! wasmgate: a validating reverse proxy for OCI registries.
//!
//! Requests flow through the stages that name the modules: [`server`] accepts, [`route`]
//! classifies, [`push`] buffers and validates manifest pushes with [`manifest`] and
//! [`wasm`], [`forward`] relays everything else through [`upstream`], and [`error`]
//! renders every rejection as an OCI error.

pub mod admin;
pub mod body;
pub mod check;
pub mod cli;
pub mod config;
pub mod error;
pub mod forward;
pub mod gate;
pub mod manifest;
pub mod metrics;
pub mod policy;
pub mod push;
pub mod route;
pub mod server;
pub mod tls;
pub mod upstream;
pub mod wasm;
