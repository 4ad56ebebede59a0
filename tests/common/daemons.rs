//! Real container runtimes from Debian's packages, each started by a test
//! on private sockets and directories, stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn wait_for(what: &str, log: &Path, ready: impl Fn() -> bool, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if ready() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "{what} did not come up:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// dockerd on a private socket, vfs storage, no iptables, no bridge.
pub struct Dockerd {
    pub dir: tempfile::TempDir,
    pub host: String,
    child: Child,
}

impl Dockerd {
    /// dockerd's process, for measuring what it and its children spend.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn start() -> Dockerd {
        Self::start_with("vfs")
    }

    /// Starts dockerd with `driver` (`vfs` works everywhere; `overlay2` where
    /// the kernel allows it).
    pub fn start_with(driver: &str) -> Dockerd {
        Self::start_on(driver, None)
    }

    /// Starts dockerd with `driver`, its data in `data_root` where given
    /// (else in its own directory).
    pub fn start_on(driver: &str, data_root: Option<&std::path::Path>) -> Dockerd {
        assert!(
            super::have("dockerd"),
            "dockerd is not installed: run the README's test command"
        );
        // Short path: unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("bd")
            .tempdir_in("/tmp")
            .unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path();
        let sock = p.join("d.sock");
        let log = p.join("dockerd.log");
        let ns = format!(
            "bale-{}",
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let mut child = Command::new("dockerd")
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .arg(format!("--storage-driver={driver}"))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--ip-masq=false",
                // Docker's default pools give 31 networks per host, and a
                // bridge is a host route that every other daemon of the run
                // must avoid: /24s out of one /12 leave room for thousands.
                "--default-address-pool",
                "base=172.16.0.0/12,size=24",
            ])
            .arg("--data-root")
            .arg(data_root.map_or_else(|| p.join("data"), std::path::Path::to_path_buf))
            .arg("--exec-root")
            .arg(p.join("x"))
            .arg("--pidfile")
            .arg(p.join("d.pid"))
            .arg("--containerd-namespace")
            .arg(&ns)
            .arg("--containerd-plugins-namespace")
            .arg(format!("{ns}-p"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}")))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dockerd: {e}"));
        let host = format!("unix://{}", sock.display());
        let h = host.clone();
        wait_for(
            "dockerd",
            &log,
            || {
                Command::new("docker")
                    .args(["-H", &h, "version"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            },
            &mut child,
        );
        Dockerd { dir, host, child }
    }

    /// Runs `docker` against this daemon.
    pub fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .args(["-H", &self.host])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("docker: {e}"))
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // A stopped dockerd leaves its networks' bridges (and their routes)
        // on the host; removing containers and networks first takes them
        // away, so later daemons of the same run find free subnets.
        let out = self.docker(&["ps", "-aq"]);
        let ids = String::from_utf8_lossy(&out.stdout).into_owned();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(ids);
            let _ = self.docker(&args);
        }
        let _ = self.docker(&["swarm", "leave", "--force"]);
        let _ = self.docker(&["network", "prune", "-f"]);
        stop(&mut self.child);
        // Network namespaces dockerd bind-mounted under its exec root
        // outlive it; an overlay one keeps its VXLAN port, and the next
        // swarm of the run could not make its own ("file exists").
        let root = self.dir.path().display().to_string();
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        for m in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)) {
            if m.starts_with(&root) {
                let _ = Command::new("umount").args(["-l", m]).status();
            }
        }
    }
}

/// containerd on a private socket, root and state.
pub struct Containerd {
    pub dir: tempfile::TempDir,
    pub address: PathBuf,
    child: Child,
}

impl Containerd {
    pub fn start() -> Containerd {
        assert!(
            super::have("containerd"),
            "containerd is not installed: run the README's test command"
        );
        let dir = tempfile::Builder::new()
            .prefix("bc")
            .tempdir_in("/tmp")
            .unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path();
        let address = p.join("c.sock");
        let log = p.join("containerd.log");
        let config = p.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{}\"\nstate = \"{}\"\n[grpc]\n  address = \"{}\"\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  disable_cgroup = true\n",
                p.join("root").display(),
                p.join("state").display(),
                address.display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}")))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start containerd: {e}"));
        let a = address.clone();
        wait_for(
            "containerd",
            &log,
            || {
                Command::new("ctr")
                    .arg("-a")
                    .arg(&a)
                    .arg("version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            },
            &mut child,
        );
        Containerd {
            dir,
            address,
            child,
        }
    }

    /// Runs `ctr` against this daemon in `namespace`.
    pub fn ctr(&self, namespace: &str, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("-a")
            .arg(&self.address)
            .args(["-n", namespace])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ctr: {e}"))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Podman (daemonless) on a private storage root, run and network config
/// directories: every `podman` bale or a test runs gets `env()`.
pub struct Podman {
    pub dir: tempfile::TempDir,
}

impl Podman {
    pub fn new() -> Podman {
        assert!(
            super::have("podman") && super::have("podman-compose"),
            "podman or podman-compose is not installed: run the README's test command"
        );
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let d = dir.path();
        for sub in ["root", "run", "tmp", "networks", "volumes"] {
            std::fs::create_dir_all(d.join(sub)).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/root\"\nrunroot = \"{0}/run\"\n",
                d.display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // Sandboxes refuse raising rlimits to podman's defaults; modest
        // explicit ones work everywhere.
        std::fs::write(
            d.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=4096:4096\", \"nproc=4096:4096\"]\n[engine]\ntmp_dir = \"{0}/tmp\"\nvolume_path = \"{0}/volumes\"\n[network]\nnetwork_config_dir = \"{0}/networks\"\n",
                d.display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Podman { dir }
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        let d = self.dir.path();
        vec![
            (
                "CONTAINERS_STORAGE_CONF",
                d.join("storage.conf").display().to_string(),
            ),
            (
                "CONTAINERS_CONF",
                d.join("containers.conf").display().to_string(),
            ),
        ]
    }

    pub fn podman(&self, args: &[&str]) -> std::process::Output {
        Command::new("podman")
            .args(args)
            .envs(self.env())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("podman: {e}"))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Containers, pods and networks go before their storage does.
        let _ = self.podman(&["pod", "rm", "-a", "-f", "-t", "0"]);
        let _ = self.podman(&["rm", "-a", "-f", "-t", "0"]);
        let _ = self.podman(&["network", "prune", "-f"]);
        // vfs layers can hold read-only directories.
        let _ = Command::new("chmod")
            .args(["-R", "u+w"])
            .arg(self.dir.path())
            .status();
    }
}
