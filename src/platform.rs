//! Target platforms: `os/architecture[/variant]`, with the names OCI uses.

use std::fmt;

/// A target platform, `os/architecture[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, ….
    pub architecture: String,
    /// `v8`, `v7`, … where the architecture has variants.
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Some(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: None,
            }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Some(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: Some((*v).into()),
            }),
            _ => None,
        }
    }
}

/// Architectures as OCI names them (Go's GOARCH), with the names people
/// often write instead.
const ARCHITECTURES: &[&str] = &[
    "amd64", "arm64", "arm", "386", "ppc64le", "ppc64", "s390x", "riscv64", "mips64le", "mips64",
    "mipsle", "mips", "loong64", "wasm",
];
const ARCH_ALIASES: &[(&str, &str)] = &[
    ("x86_64", "amd64"),
    ("x86-64", "amd64"),
    ("x64", "amd64"),
    ("aarch64", "arm64"),
    ("armv8", "arm64"),
    ("i386", "386"),
    ("i686", "386"),
    ("x86", "386"),
    ("armhf", "arm/v7"),
    ("armv7", "arm/v7"),
    ("armv7l", "arm/v7"),
    ("armel", "arm/v6"),
    ("ppc64el", "ppc64le"),
];
const OSES: &[&str] = &[
    "linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos", "aix",
    "android", "wasip1", "js",
];

impl Platform {
    /// Checks that os and architecture are names OCI uses, suggesting the
    /// right one for a common alias (`linux/x86_64` → `linux/amd64`).
    pub fn check_known(&self) -> Result<(), String> {
        if !OSES.contains(&self.os.as_str()) {
            return Err(format!(
                "platform `{self}`: unknown os `{}` (OCI uses Go's names: linux, windows, …)",
                self.os
            ));
        }
        if ARCHITECTURES.contains(&self.architecture.as_str()) {
            return Ok(());
        }
        match ARCH_ALIASES.iter().find(|(a, _)| *a == self.architecture) {
            Some((_, right)) => Err(format!(
                "platform `{self}`: OCI calls this architecture `{right}`; write `{}/{right}`",
                self.os
            )),
            None => Err(format!(
                "platform `{self}`: unknown architecture `{}` (OCI uses Go's names: {})",
                self.architecture,
                ARCHITECTURES.join(", ")
            )),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}
