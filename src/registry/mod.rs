//! The OCI distribution protocol: the pull client bale locks and fetches
//! with (`client`), and the read-only registry `bale serve` runs over a
//! verified bundle (`server`).

mod client;
pub mod server;

pub use client::*;
