//! What can go wrong talking to a registry.

/// Errors talking to a registry. None of them carries a credential.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Connection or I/O failure.
    #[error("{url}: {message}")]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// The registry does not have it.
    #[error("{url}: not found (404)")]
    NotFound {
        /// The URL.
        url: String,
    },
    /// Refused credentials, or credentials needed and missing.
    #[error("{registry}: unauthorized: {message}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// Why.
        message: String,
    },
    /// Any other client error status, which is not retried.
    #[error("{url}: HTTP {status}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the body, for registries' error messages.
        body: String,
    },
    /// Retries used up.
    #[error("{url}: gave up after {attempts} attempts: {last}")]
    GaveUp {
        /// The URL.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// A body over the limit.
    #[error("{url}: response larger than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// Every mirror and the registry failed; each failure in order.
    #[error("{domain}: every host failed, mirrors first:\n{}", failures.iter().map(|f| format!("      {f}")).collect::<Vec<_>>().join("\n"))]
    Endpoints {
        /// The registry.
        domain: String,
        /// `host: error`, mirrors first.
        failures: Vec<String>,
        /// Whether every host answered 404.
        not_found: bool,
    },
    /// The host's name does not resolve (no network, or no DNS for it):
    /// not retried, since a few seconds will not bring a network.
    #[error("cannot resolve {host} (no network, or no DNS for it)")]
    Unresolvable {
        /// The host.
        host: String,
    },
    /// A protocol violation.
    #[error("{url}: {message}")]
    Protocol {
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
}

impl RegistryError {
    /// Whether every host answered that it does not have it (404).
    pub fn not_found(&self) -> bool {
        match self {
            RegistryError::NotFound { .. } => true,
            RegistryError::Endpoints { not_found, .. } => *not_found,
            _ => false,
        }
    }

    /// Whether the registry could not be reached at all (as opposed to
    /// answering with an error), where a mirror is the usual remedy.
    pub fn unreachable(&self) -> bool {
        match self {
            RegistryError::Transport { .. }
            | RegistryError::GaveUp { .. }
            | RegistryError::Unresolvable { .. } => true,
            RegistryError::Endpoints { not_found, .. } => !not_found,
            _ => false,
        }
    }

    /// Whether trying the next mirror (or the registry itself) may help.
    pub(super) fn try_next_endpoint(&self) -> bool {
        matches!(
            self,
            RegistryError::NotFound { .. }
                | RegistryError::Transport { .. }
                | RegistryError::GaveUp { .. }
                | RegistryError::Unresolvable { .. }
        )
    }
}
