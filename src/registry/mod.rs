//! The OCI distribution protocol: the pull client bale locks and fetches
//! with (`client`), and the read-only registry `bale serve` runs over a
//! verified bundle (`server`), and the push of a bundle into an existing
//! registry (`push`).

mod client;

pub use client::*;
