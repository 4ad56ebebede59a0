//! The OCI distribution protocol's client: the pull side bale locks and
//! fetches with, and the requests `bale push` makes (`client`); what can go
//! wrong (`error`); the HTTP details that need no client (`http`).

mod client;
mod error;
mod http;

pub use client::*;
pub use error::RegistryError;
pub(crate) use http::header;
