//! Who this host is, for evidence: its name and its systemd machine ID.

use serde::Serialize;

/// The host an audit ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    /// The kernel's host name.
    pub hostname: String,
    /// `/etc/machine-id` (32 hex digits), where the host has one.
    pub machine_id: Option<String>,
}

/// This host.
pub fn this() -> Host {
    let read = |p: &str| crate::digest::read_regular(std::path::Path::new(p), 4096).ok();
    let text = |b: Vec<u8>| crate::packages::field(&String::from_utf8_lossy(&b));
    let hostname = read("/proc/sys/kernel/hostname")
        .map(text)
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    let machine_id = read("/etc/machine-id")
        .map(text)
        .filter(|m| m.len() == 32 && m.bytes().all(|c| c.is_ascii_hexdigit()));
    Host {
        hostname,
        machine_id,
    }
}
