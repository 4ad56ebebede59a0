//! Flags turned into the library's options, once per command line.

use bale::ops::{NetOptions, SpecOptions, StoreOptions};

use super::args::{Blobs, Hosts, Net, RuntimeArgs, SpecFile};

/// bundle.toml and how registries are reached.
pub fn spec(spec: SpecFile, net: Net) -> SpecOptions {
    SpecOptions {
        file: spec.file,
        net: NetOptions {
            config: net.hosts.config,
            mirrors: net.mirrors,
            insecure: net.hosts.insecure,
        },
    }
}

/// The lock and store flags.
pub fn store(b: Blobs) -> StoreOptions {
    StoreOptions {
        locked: b.locked,
        dir: b.store,
        jobs: b.jobs,
    }
}

/// Settings and plain-HTTP hosts, without mirrors.
pub fn hosts(h: Hosts) -> NetOptions {
    NetOptions {
        config: h.config,
        mirrors: Vec::new(),
        insecure: h.insecure,
    }
}

/// The runtime flags.
pub fn runtime(r: RuntimeArgs) -> bale::ops::runtime::RuntimeChoice {
    bale::ops::runtime::RuntimeChoice {
        runtime: r.runtime,
        registry: r.registry,
        registry_ca: r.registry_ca,
        containerd_address: r.containerd_address,
        namespace: r.namespace,
    }
}
