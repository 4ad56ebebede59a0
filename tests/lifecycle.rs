//! Day two, with real daemons and real data: snapshots, restore, upgrades
//! that undo themselves, rollback with data, uninstall and prune.
//!
//! The stack is one service writing into a named volume. Release 1.0.0
//! keeps its data; release 2.0.0's "migration" rewrites that data and
//! then fails its healthcheck, printing a secret on the way out.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use bale::error::exit;

use common::daemons::{Dockerd, Podman};
use common::*;

const GOOD: &str = r#"services:
  app:
    image: localhost/bale-demo/worker:1.0
    command: ["/bin/sh", "-c", "/bin/busybox mkdir -p /data/db; [ -f /data/db/state ] || echo 'v1 rows' > /data/db/state; /bin/busybox touch /tmp/ready; trap 'exit 0' TERM; /bin/busybox sleep 100000 & wait"]
    environment:
      APP_TOKEN: ${APP_TOKEN}
    volumes: ["data:/data"]
    healthcheck:
      test: ["CMD", "/bin/busybox", "test", "-f", "/tmp/ready"]
      interval: 1s
      timeout: 2s
      retries: 30
DUMP
volumes:
  data: {}
"#;

/// Rewrites the data, says the secret, and never becomes healthy.
const MIGRATING: &str = r#"services:
  app:
    image: localhost/bale-demo/worker:1.0
    command: ["/bin/sh", "-c", "echo 'v2 migrated rows' > /data/db/state; /bin/busybox rm -rf /data/keep; echo \"migration failed: APP_TOKEN=$$APP_TOKEN\"; trap 'exit 0' TERM; /bin/busybox sleep 100000 & wait"]
    environment:
      APP_TOKEN: ${APP_TOKEN}
    volumes: ["data:/data"]
    healthcheck:
      test: ["CMD", "/bin/busybox", "false"]
      interval: 1s
      timeout: 2s
      retries: 2
volumes:
  data: {}
"#;

/// A dump job, run once at `--up` and before each snapshot.
const DUMP_SERVICE: &str = r#"  dump:
    image: localhost/bale-demo/worker:1.0
    command: ["/bin/sh", "-c", "/bin/busybox cp /data/db/state /data/dump.sql"]
    volumes: ["data:/data"]
    depends_on:
      app: {condition: service_healthy}
"#;

fn bundle_toml(version: &str, dump: bool) -> String {
    let (jobs, snapshot) = if dump {
        ("jobs = [\"dump\"]\n", "\n[snapshot]\njobs = [\"dump\"]\n")
    } else {
        ("", "")
    };
    let dump_image = if dump {
        "dump = \"oci:images:localhost/bale-demo/worker:1.0\"\n"
    } else {
        ""
    };
    format!(
        r#"[bundle]
name = "life"
version = "{version}"

[images]
app = "oci:images:localhost/bale-demo/worker:1.0"
{dump_image}
[compose]
file = "compose.yml"
project = "lifestack"
{jobs}
[data]
paths = ["uploads/"]
{snapshot}
[secrets.APP_TOKEN]
length = 32
"#
    )
}

/// The runtime a site runs: Docker (a private dockerd) or Podman.
enum Daemon {
    Docker(Dockerd),
    Podman(Podman),
}

/// The stack's project and its install directory `t/` on one runtime.
struct Life {
    p: Project,
    daemon: Daemon,
}

impl Life {
    fn docker() -> Life {
        Life::new(Daemon::Docker(Dockerd::start()))
    }

    fn podman() -> Life {
        Life::new(Daemon::Podman(Podman::new()))
    }

    fn new(daemon: Daemon) -> Life {
        let p = Project::new(&bundle_toml("1.0.0", false));
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/images"),
            &p.path().join("images"),
        );
        p.keygen();
        Life { p, daemon }
    }

    /// Builds `version` with `compose` (DUMP replaced by the dump job or
    /// nothing).
    fn build(&self, version: &str, compose: &str, dump: bool) -> String {
        self.p.write("bundle.toml", &bundle_toml(version, dump));
        let dump_service = if dump { DUMP_SERVICE } else { "" };
        self.p
            .write("compose.yml", &compose.replace("DUMP\n", dump_service));
        let out = format!("life-{version}.bale");
        self.bale(&["build", "--sign-key", "keys/k.sec", "-o", &out])
            .ok();
        out
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        match &self.daemon {
            Daemon::Docker(d) => vec![("DOCKER_HOST", d.host.clone())],
            Daemon::Podman(p) => p.env(),
        }
    }

    fn runtime(&self) -> &'static str {
        match self.daemon {
            Daemon::Docker(_) => "docker",
            Daemon::Podman(_) => "podman",
        }
    }

    fn bale_with(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let env = self.env();
        let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.extend_from_slice(extra);
        self.p.bale_env(args, &env)
    }

    fn bale(&self, args: &[&str]) -> Run {
        self.bale_with(args, &[])
    }

    fn install(&self, bundle: &str, extra: &[&str]) -> Run {
        self.install_fault(bundle, extra, None)
    }

    fn install_fault(&self, bundle: &str, extra: &[&str], fault: Option<&str>) -> Run {
        let mut args = vec![
            "install",
            bundle,
            "--public-key",
            "keys/k.pub",
            "--target",
            "t",
            "--runtime",
            self.runtime(),
            "--up",
            "--timeout",
            "90",
        ];
        args.extend_from_slice(extra);
        match fault {
            Some(step) => self.bale_with(&args, &[("BALE_FAULT_AFTER", step)]),
            None => self.bale(&args),
        }
    }

    fn runtime_cli(&self, args: &[&str]) -> std::process::Output {
        match &self.daemon {
            Daemon::Docker(d) => d.docker(args),
            Daemon::Podman(p) => p.podman(args),
        }
    }

    /// Where the project's volume is on this host.
    fn volume(&self) -> PathBuf {
        let out = self.runtime_cli(&[
            "volume",
            "inspect",
            "--format",
            "{{.Mountpoint}}",
            "lifestack_data",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    }

    fn target(&self) -> PathBuf {
        self.p.path().join("t")
    }

    /// `bale status --json`.
    fn status(&self) -> serde_json::Value {
        let r = self.bale(&["status", "--target", "t", "--json"]);
        r.ok();
        serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", r.describe()))
    }

    /// The current version and the app's `state/health`.
    fn running(&self) -> (String, String) {
        let v = self.status();
        let app = v["services"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["service"] == "app"))
            .map(|s| {
                format!(
                    "{}/{}",
                    s["state"].as_str().unwrap_or(""),
                    s["health"].as_str().unwrap_or("")
                )
            })
            .unwrap_or_default();
        (v["version"].as_str().unwrap_or_default().to_owned(), app)
    }

    /// Data the site made after install: in the volume, files of several
    /// kinds and owners; in the `[data]` path, an upload.
    fn write_data(&self) {
        let vol = self.volume();
        let keep = vol.join("keep");
        std::fs::create_dir_all(keep.join("deep/er")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(keep.join("blob.bin"), noise(7, 3 << 20)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(keep.join("deep/er/notes.txt"), "kept\n").unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink("deep/er/notes.txt", keep.join("link"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::hard_link(keep.join("blob.bin"), keep.join("blob.hard"))
            .unwrap_or_else(|e| panic!("{e}"));
        let sparse =
            std::fs::File::create(keep.join("sparse.img")).unwrap_or_else(|e| panic!("{e}"));
        sparse.set_len(64 << 20).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::chown(keep.join("deep/er/notes.txt"), Some(1234), Some(4321))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(self.target().join("uploads")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(self.target().join("uploads/logo.png"), noise(3, 10_000))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Every file of the volume and the upload: kind, owner, mode, mtime,
    /// content (or link target), and whether it has holes.
    fn data(&self) -> BTreeMap<String, String> {
        let mut out = tree(&self.volume(), "volume");
        out.extend(tree(&self.target().join("uploads"), "uploads"));
        out
    }
}

impl Drop for Life {
    fn drop(&mut self) {
        let _ = self.runtime_cli(&["rm", "-f", "lifestack_app_1", "lifestack_dump_1"]);
    }
}

fn tree(root: &Path, label: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .flatten()
    {
        let Ok(m) = e.metadata() else { continue };
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap_or(e.path())
            .display()
            .to_string();
        let content = if m.is_file() {
            sha(&std::fs::read(e.path()).unwrap_or_default())
        } else if m.file_type().is_symlink() {
            std::fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        let holes = m.is_file() && m.blocks() * 512 < m.size();
        let mtime = if m.is_dir() { 0 } else { m.mtime() };
        out.insert(
            format!("{label}:{rel}"),
            format!(
                "{:o} {}:{} {mtime} {content} holes={holes}",
                m.mode(),
                m.uid(),
                m.gid()
            ),
        );
    }
    out
}

fn token(l: &Life) -> String {
    l.p.read("t/.env")
        .lines()
        .find_map(|l| l.strip_prefix("APP_TOKEN=").map(str::to_owned))
        .unwrap_or_else(|| panic!("no APP_TOKEN in .env"))
}

/// The one snapshot's archive of the volume.
fn volume_archive(l: &Life) -> PathBuf {
    let snaps = l.target().join(".bale/snapshots");
    let snap = std::fs::read_dir(&snaps)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.path())
        .max()
        .unwrap_or_else(|| panic!("no snapshot"));
    std::fs::read_dir(snap.join("volumes"))
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.path())
        .next()
        .unwrap_or_else(|| panic!("no volume archive"))
}

/// The scenario the issue names, on one runtime: a failed upgrade is
/// undone with the data as it was, an altered snapshot is refused, and a
/// failure left for debugging is rolled back with its data later.
fn failed_upgrade_scenario(l: &Life) {
    let v1 = l.build("1.0.0", GOOD, false);
    let v2 = l.build("2.0.0", MIGRATING, false);
    l.install(&v1, &[]).ok();
    l.write_data();
    let before = l.data();
    assert!(
        before.values().any(|v| v.contains("holes=true")),
        "{before:?}"
    );
    let secret = token(l);

    // The upgrade snapshots, starts 2.0.0, sees it fail, and undoes it all.
    let r = l.install(&v2, &[]);
    r.fails(exit::ROLLED_BACK);
    r.says("app")
        .says("migration failed: APP_TOKEN=<redacted>")
        .says("the site runs 1.0.0 again");
    assert!(
        !r.stderr().contains(&secret) && !r.stdout().contains(&secret),
        "{}",
        r.describe()
    );
    assert_eq!(l.data(), before, "the data is not as before the upgrade");
    assert_eq!(l.running(), ("1.0.0".into(), "running/healthy".into()));
    let st = l.status();
    assert_eq!(st["snapshots"].as_array().map(Vec::len), Some(1), "{st}");
    assert!(st["upgrade"].is_null(), "{st}");
    l.bale(&["audit", &v1, "--public-key", "keys/k.pub", "--target", "t"])
        .ok();

    // A snapshot whose archive was altered is refused by restore, named.
    let archive = volume_archive(l);
    let mut bytes = std::fs::read(&archive).unwrap_or_else(|e| panic!("{e}"));
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&archive, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let r = l.bale(&["restore", "--target", "t"]);
    r.fails(exit::INTEGRITY);
    r.says(&format!(
        "volumes/{}",
        archive
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    r.says("nothing was restored");
    assert_eq!(l.data(), before);
    assert_eq!(l.running(), ("1.0.0".into(), "running/healthy".into()));
    bytes[mid] ^= 0x40;
    std::fs::write(&archive, &bytes).unwrap_or_else(|e| panic!("{e}"));

    // --no-rollback leaves the failure for debugging; `bale rollback`
    // then goes back with the data from before the upgrade.
    let r = l.install(&v2, &["--no-rollback"]);
    r.fails(exit::RUNTIME);
    let st = l.status();
    assert_eq!(st["version"], "2.0.0", "{st}");
    assert_eq!(st["upgrade"]["phase"], "failed", "{st}");
    assert_ne!(l.data(), before, "the migration ran");
    let r = l.bale(&["rollback", "--target", "t", "--json"]);
    r.ok();
    assert_eq!(l.data(), before);
    assert_eq!(l.running(), ("1.0.0".into(), "running/healthy".into()));
    assert!(l.status()["upgrade"].is_null());
}

#[test]
fn docker_a_failed_upgrade_is_undone_with_the_data_as_it_was() {
    failed_upgrade_scenario(&Life::docker());
}

#[test]
fn podman_a_failed_upgrade_is_undone_with_the_data_as_it_was() {
    failed_upgrade_scenario(&Life::podman());
}

#[test]
fn kill_9_during_snapshot_upgrade_and_rollback_leaves_what_the_next_run_finishes() {
    let l = Life::docker();
    let v1 = l.build("1.0.0", GOOD, false);
    let v2 = l.build("2.0.0", MIGRATING, false);
    l.install(&v1, &[]).ok();
    l.write_data();
    let before = l.data();

    // Killed with the services stopped for a snapshot: nothing is listed,
    // and the next install starts them again.
    let r = l.bale_with(
        &["snapshot", "--target", "t"],
        &[("BALE_FAULT_AFTER", "snapshot-stopped")],
    );
    assert_ne!(r.code(), 0, "{}", r.describe());
    assert_eq!(l.status()["snapshots"].as_array().map(Vec::len), Some(0));
    l.install(&v1, &[]).ok();
    assert_eq!(l.running(), ("1.0.0".into(), "running/healthy".into()));
    let r = l.bale(&["snapshot", "--target", "t", "--json"]);
    r.ok();
    let leftovers: Vec<String> = std::fs::read_dir(l.target().join(".bale/snapshots"))
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("staging-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Killed once 2.0.0 ran its migration: `bale rollback` goes back with
    // the data from before.
    let r = l.install_fault(&v2, &[], Some("up"));
    assert_ne!(r.code(), 0, "{}", r.describe());
    assert_eq!(l.status()["upgrade"]["phase"], "upgrading");
    let r = l.bale(&["rollback", "--target", "t"]);
    r.ok();
    r.says("data restored from snapshot");
    assert_eq!(l.data(), before);
    assert_eq!(l.running(), ("1.0.0".into(), "running/healthy".into()));

    // Killed in the middle of rolling back on its own: the next install
    // (of any release) finishes the rollback first.
    let r = l.install_fault(&v2, &[], Some("rollback-restored"));
    assert_ne!(r.code(), 0, "{}", r.describe());
    assert_eq!(l.status()["upgrade"]["phase"], "rolling-back");
    l.install(&v1, &[]).ok();
    assert_eq!(l.data(), before);
    assert_eq!(l.running(), ("1.0.0".into(), "running/healthy".into()));
    assert!(l.status()["upgrade"].is_null());

    // Killed with the data swapped back but 2.0.0 still current:
    // `bale rollback` restores again and switches.
    let r = l.install_fault(&v2, &[], Some("restore-swapped"));
    assert_ne!(r.code(), 0, "{}", r.describe());
    let st = l.status();
    assert_eq!(
        (st["version"].as_str(), st["upgrade"]["phase"].as_str()),
        (Some("2.0.0"), Some("rolling-back")),
        "{st}"
    );
    l.bale(&["rollback", "--target", "t"]).ok();
    assert_eq!(l.data(), before);
    assert_eq!(l.running(), ("1.0.0".into(), "running/healthy".into()));
    assert!(l.status()["upgrade"].is_null());
}

#[test]
fn a_disk_that_fills_during_the_snapshot_refuses_the_upgrade_before_any_change() {
    let l = Life::docker();
    let v1 = l.build("1.0.0", GOOD, false);
    let v2 = l.build("2.0.0", MIGRATING, false);
    // The install directory on a file system of 2 MiB: room for releases,
    // none for 3 MiB of data that does not compress.
    let t = l.target();
    let _disk = SmallDisk::mount(&t, "2m");
    l.install(&v1, &[]).ok();
    l.write_data();
    let before = l.data();
    let r = l.install(&v2, &[]);
    r.fails(exit::FAILURE);
    r.says("No space left on device");
    assert_eq!(l.data(), before);
    let st = l.status();
    assert_eq!(st["version"], "1.0.0", "{st}");
    assert_eq!(st["snapshots"].as_array().map(Vec::len), Some(0), "{st}");
    assert!(st["upgrade"].is_null(), "{st}");
    assert_eq!(l.running(), ("1.0.0".into(), "running/healthy".into()));
    let left: Vec<_> = std::fs::read_dir(t.join(".bale/snapshots"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn two_snapshots_at_once_wait_on_the_lock_and_both_see_a_running_stack() {
    let l = Life::docker();
    let v1 = l.build("1.0.0", GOOD, false);
    l.install(&v1, &[]).ok();
    l.write_data();
    let runs: Vec<Run> = std::thread::scope(|s| {
        let a = s.spawn(|| l.bale(&["snapshot", "--target", "t", "--json"]));
        let b = s.spawn(|| l.bale(&["snapshot", "--target", "t", "--json"]));
        vec![
            a.join().unwrap_or_else(|_| panic!("a")),
            b.join().unwrap_or_else(|_| panic!("b")),
        ]
    });
    let mut ids = Vec::new();
    for r in &runs {
        r.ok();
        let v: serde_json::Value =
            serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", r.describe()));
        // Had they overlapped, one would have found the stack stopped.
        assert_eq!(v["manifest"]["consistency"], "stopped", "{v}");
        ids.push(v["manifest"]["id"].as_str().unwrap_or_default().to_owned());
    }
    assert_ne!(ids[0], ids[1]);
    assert_eq!(l.running(), ("1.0.0".into(), "running/healthy".into()));
}

#[test]
fn dump_jobs_make_a_live_snapshot_and_restore_brings_their_dump_back() {
    let l = Life::docker();
    let v1 = l.build("1.0.0", GOOD, true);
    l.install(&v1, &[]).ok();
    let r = l.bale(&["snapshot", "--target", "t", "--json"]);
    r.ok();
    let v: serde_json::Value =
        serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", r.describe()));
    assert_eq!(v["manifest"]["consistency"], "dump-jobs", "{v}");
    // The site's data is readable by root alone.
    let dir = PathBuf::from(v["dir"].as_str().unwrap_or_default());
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.mode() & 0o777).unwrap_or(0);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("snapshot.json")), 0o600);
    assert_eq!(mode(&volume_archive(&l)), 0o600);
    let dump = l.volume().join("dump.sql");
    assert_eq!(
        std::fs::read_to_string(&dump).unwrap_or_default(),
        "v1 rows\n"
    );
    std::fs::write(&dump, "damaged\n").unwrap_or_else(|e| panic!("{e}"));
    let r = l.bale(&["restore", "--target", "t"]);
    r.ok();
    assert_eq!(
        std::fs::read_to_string(&dump).unwrap_or_default(),
        "v1 rows\n"
    );
    assert_eq!(l.running(), ("1.0.0".into(), "running/healthy".into()));
}

/// A third release that runs well: a changed command, another image ID.
const GOOD_V3: &str = r#"services:
  app:
    image: localhost/bale-demo/web:1.0
    command: ["/bin/sh", "-c", "/bin/busybox touch /tmp/ready; trap 'exit 0' TERM; /bin/busybox sleep 100000 & wait"]
    volumes: ["data:/data"]
    healthcheck:
      test: ["CMD", "/bin/busybox", "test", "-f", "/tmp/ready"]
      interval: 1s
      timeout: 2s
      retries: 30
volumes:
  data: {}
"#;

fn image_ids(l: &Life) -> Vec<String> {
    let out = l.runtime_cli(&["image", "ls", "-q", "--no-trunc"]);
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|s| s.trim_start_matches("sha256:").to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[test]
fn prune_removes_older_releases_their_images_and_snapshots_and_counts_the_bytes() {
    let l = Life::docker();
    let v1 = l.build("1.0.0", GOOD, false);
    l.install(&v1, &[]).ok();
    l.write_data();
    // 3.0.0 runs another image (web) and upgrades with a snapshot.
    l.p.write(
        "bundle.toml",
        &bundle_toml("3.0.0", false).replace(
            "localhost/bale-demo/worker:1.0",
            "localhost/bale-demo/web:1.0",
        ),
    );
    l.p.write("compose.yml", GOOD_V3);
    l.bale(&["build", "--sign-key", "keys/k.sec", "-o", "life-3.0.0.bale"])
        .ok();
    l.install("life-3.0.0.bale", &[]).ok();
    assert_eq!(l.running(), ("3.0.0".into(), "running/healthy".into()));
    let st = l.status();
    assert_eq!(st["releases"].as_array().map(Vec::len), Some(2), "{st}");
    assert_eq!(st["snapshots"].as_array().map(Vec::len), Some(1), "{st}");
    let images = image_ids(&l);
    assert_eq!(images.len(), 2, "{images:?}");

    // A dry run says what would go and removes nothing.
    let r = l.bale(&[
        "prune",
        "--target",
        "t",
        "--keep",
        "1",
        "--dry-run",
        "--json",
    ]);
    r.ok();
    let dry: serde_json::Value =
        serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        dry["releases"][0]["name"]
            .as_str()
            .map(|s| s.starts_with("1.0.0-")),
        Some(true),
        "{dry}"
    );
    assert_eq!(
        dry["images"][0]["name"], "localhost/bale-demo/worker:1.0",
        "{dry}"
    );
    assert_eq!(dry["snapshots"].as_array().map(Vec::len), Some(1), "{dry}");
    assert!(
        dry["bytes_freed"].as_u64().unwrap_or(0) > 1_000_000,
        "{dry}"
    );
    assert_eq!(image_ids(&l), images);
    assert_eq!(l.status()["releases"].as_array().map(Vec::len), Some(2));

    // The prune itself: the same, and done.
    let r = l.bale(&["prune", "--target", "t", "--keep", "1", "--json"]);
    r.ok();
    let done: serde_json::Value =
        serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done["bytes_freed"], dry["bytes_freed"], "{done}");
    let st = l.status();
    assert_eq!(st["releases"].as_array().map(Vec::len), Some(1), "{st}");
    assert_eq!(st["snapshots"].as_array().map(Vec::len), Some(0), "{st}");
    assert_eq!(image_ids(&l).len(), 1);
    assert_eq!(l.running(), ("3.0.0".into(), "running/healthy".into()));
    l.bale(&["audit", "--target", "t"]).ok();
    let r = l.bale(&["prune", "--target", "t", "--keep", "0"]);
    r.fails(exit::USAGE);
}

fn uninstall_scenario(l: &Life) {
    let v1 = l.build("1.0.0", GOOD, false);
    l.install(&v1, &[]).ok();
    l.write_data();
    let before = l.data();
    l.bale(&["snapshot", "--target", "t"]).ok();

    // Without a terminal, --purge needs --yes; nothing changes.
    let r = l.bale(&["uninstall", "--target", "t", "--purge"]);
    r.fails(exit::USAGE);
    assert_eq!(l.running(), ("1.0.0".into(), "running/healthy".into()));

    // Uninstall: containers and images gone; volume, .env, snapshot kept.
    let r = l.bale(&["uninstall", "--target", "t", "--json"]);
    r.ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["volumes"][0], "lifestack_data", "{v}");
    assert_eq!(v["images"].as_array().map(Vec::len), Some(1), "{v}");
    let ps = l.runtime_cli(&[
        "ps",
        "-a",
        "-q",
        "--filter",
        "label=com.docker.compose.project=lifestack",
    ]);
    assert!(String::from_utf8_lossy(&ps.stdout).trim().is_empty());
    assert!(image_ids(l).is_empty(), "{:?}", image_ids(l));
    assert!(!l.target().join("current").exists());
    assert!(l.target().join(".env").is_file());
    assert_eq!(l.data(), before);
    l.bale(&["status", "--target", "t"]).fails(exit::FAILURE);

    // The same bundle again, and its snapshot restores.
    l.install(&v1, &[]).ok();
    std::fs::write(l.volume().join("db/state"), "changed since\n")
        .unwrap_or_else(|e| panic!("{e}"));
    l.bale(&["restore", "--target", "t"]).ok();
    assert_eq!(l.data(), before);
    assert_eq!(l.running(), ("1.0.0".into(), "running/healthy".into()));

    // --keep-images leaves them for the next install.
    let images = image_ids(l);
    assert_eq!(images.len(), 1);
    l.bale(&["uninstall", "--target", "t", "--keep-images"])
        .ok();
    assert_eq!(image_ids(l), images);
    l.install(&v1, &[]).ok().says("image present");

    // --purge --yes: the data goes too.
    l.bale(&["uninstall", "--target", "t", "--purge", "--yes"])
        .ok();
    let vols = l.runtime_cli(&["volume", "ls", "-q"]);
    assert!(!String::from_utf8_lossy(&vols.stdout).contains("lifestack_data"));
    assert!(!l.target().exists(), "the install directory is left");
}

#[test]
fn docker_uninstall_keeps_the_data_unless_purged() {
    uninstall_scenario(&Life::docker());
}

#[test]
fn podman_uninstall_keeps_the_data_unless_purged() {
    uninstall_scenario(&Life::podman());
}

#[test]
fn without_a_snapshot_a_failed_upgrade_stays_failed_as_asked() {
    let l = Life::docker();
    let v1 = l.build("1.0.0", GOOD, false);
    let v2 = l.build("2.0.0", MIGRATING, false);
    l.install(&v1, &[]).ok();
    let r = l.install(&v2, &["--no-snapshot"]);
    r.fails(exit::RUNTIME);
    r.says("app");
    let st = l.status();
    assert_eq!(
        (
            st["version"].as_str(),
            st["snapshots"].as_array().map(Vec::len)
        ),
        (Some("2.0.0"), Some(0)),
        "{st}"
    );
    assert!(st["upgrade"].is_null(), "{st}");
    // The bundle may say so itself: `[upgrade] snapshot = false`.
    l.p.write(
        "bundle.toml",
        &format!(
            "{}\n[upgrade]\nsnapshot = false\n",
            bundle_toml("2.0.1", false)
        ),
    );
    l.bale(&["build", "--sign-key", "keys/k.sec", "-o", "life-2.0.1.bale"])
        .ok();
    let r = l.install("life-2.0.1.bale", &[]);
    r.fails(exit::RUNTIME);
    let st = l.status();
    assert_eq!(
        (
            st["version"].as_str(),
            st["snapshots"].as_array().map(Vec::len)
        ),
        (Some("2.0.1"), Some(0)),
        "{st}"
    );
    // Back without data: the files and images of 1.0.0.
    l.bale(&["rollback", "--target", "t", "--to", "1.0.0", "--up"])
        .ok();
    assert_eq!(l.running(), ("1.0.0".into(), "running/healthy".into()));
    let r = l.bale(&["rollback", "--target", "t", "--to", "2.0.0", "--with-data"]);
    r.fails(exit::REFUSED);
    r.says("no snapshot of release 2.0.0-");
}

#[test]
fn rollback_with_data_brings_back_the_data_from_before_the_upgrade() {
    let l = Life::docker();
    let v1 = l.build("1.0.0", GOOD, false);
    l.install(&v1, &[]).ok();
    l.write_data();
    let before = l.data();
    l.p.write("compose.yml", GOOD_V3);
    l.p.write("bundle.toml", &bundle_toml("3.0.0", false));
    l.bale(&["build", "--sign-key", "keys/k.sec", "-o", "life-3.0.0.bale"])
        .ok();
    l.install("life-3.0.0.bale", &[]).ok();
    // 3.0.0 runs well and the site writes new data under it.
    std::fs::write(l.volume().join("db/state"), "written under 3.0.0\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(l.target().join("uploads/logo.png")).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(l.data(), before);
    // Without --with-data, only the release goes back.
    l.bale(&["rollback", "--target", "t", "--up"]).ok();
    assert_ne!(l.data(), before);
    l.bale(&["rollback", "--target", "t", "--to", "3.0.0", "--up"])
        .ok();
    let r = l.bale(&["rollback", "--target", "t", "--with-data", "--json"]);
    r.ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (v["from"].as_str(), v["to"].as_str()),
        (Some("3.0.0"), Some("1.0.0")),
        "{v}"
    );
    assert!(
        v["snapshot"]
            .as_str()
            .is_some_and(|s| s.ends_with("-1.0.0")),
        "{v}"
    );
    assert_eq!(l.data(), before);
    assert_eq!(l.running(), ("1.0.0".into(), "running/healthy".into()));
}
