//! `bale serve`: a verified bundle as a read-only OCI registry.
