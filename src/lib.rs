//! bale: a declared Docker Compose stack turned into one signed,
//! reproducible offline bundle.
//!
//! The library never prints; the `bale` binary parses arguments, calls in
//! here, and renders results and progress events.

pub mod audit;
pub mod bundle;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod cosign;
pub mod digest;
pub mod document;
pub mod dotenv;
pub mod dsse;
pub mod error;
pub mod fetch;
pub mod host;
pub mod install;
pub mod inventory;
pub mod located;
pub mod lock;
pub mod manifest;
pub mod ops;
pub mod osv;
pub mod packages;
pub mod platform;
pub mod push;
pub mod quote;
pub mod reference;
pub mod registry;
pub mod runtime;
pub mod scan;
pub mod serve;
pub mod sha256x2;
pub mod sign;
pub mod spec;
pub mod status;
pub mod store;
pub mod templates;
pub mod validate;
pub mod verify;
pub mod versions;
pub mod vex;
pub mod volume_archive;

pub use error::Error;
