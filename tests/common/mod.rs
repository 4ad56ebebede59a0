//! Test harness: real programs started per test, a hostile HTTP server for
//! the faults a real registry will not produce, and image builders.
#![allow(dead_code)]

pub mod bundles;
pub mod daemons;
pub mod distros;
pub mod evidence;
pub mod forge;
pub mod hostile;
pub mod stack;
#[allow(unused_imports)]
pub use stack::Stack;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// `sha256:<hex>` of bytes.
/// A tmpfs of `size` (e.g. `2m`) mounted on `dir`, unmounted when
/// dropped: a disk that fills up. Needs root.
pub struct SmallDisk(PathBuf);

impl SmallDisk {
    pub fn mount(dir: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(mounted, "the test needs root to mount a small tmpfs");
        SmallDisk(dir.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

pub fn sha(bytes: &[u8]) -> String {
    let h = Sha256::digest(bytes);
    let mut s = String::from("sha256:");
    for b in h.as_slice() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A free loopback port (released before use; the caller retries on a clash).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A real `docker-registry` (distribution 2.8) on a random loopback port.
pub struct Registry {
    pub host: String,
    child: Child,
    _dir: tempfile::TempDir,
    pub auth: Option<(String, String)>,
}

impl Registry {
    /// The registry's process, for measuring what it spends.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where the registry keeps its blobs and manifests.
    pub fn data_dir(&self) -> PathBuf {
        self._dir.path().join("data")
    }

    pub fn start() -> Registry {
        Self::start_with(None)
    }

    pub fn start_with(auth: Option<(&str, &str)>) -> Registry {
        Self::start_opts(auth, None)
    }

    /// A registry speaking HTTPS with `dir`'s `tls.crt` and `tls.key`
    /// (see [`loopback_cert`]); the helpers that push over HTTP do not work
    /// with it.
    pub fn start_tls(auth: Option<(&str, &str)>, dir: &Path) -> Registry {
        Self::start_opts(auth, Some(dir))
    }

    fn start_opts(auth: Option<(&str, &str)>, tls: Option<&Path>) -> Registry {
        assert!(
            have("docker-registry"),
            "docker-registry is not installed: run the README's test command"
        );
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let port = free_port();
            let mut cfg = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: test-secret\n",
                dir.path().join("data").display()
            );
            if let Some(t) = tls {
                cfg.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    t.join("tls.crt").display(),
                    t.join("tls.key").display()
                ));
            }
            if let Some((u, p)) = auth {
                let hash = bcrypt::hash(p, 4).unwrap_or_else(|e| panic!("{e}"));
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, format!("{u}:{hash}\n"))
                    .unwrap_or_else(|e| panic!("{e}"));
                cfg.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: bale-test\n    path: {}\n",
                    htpasswd.display()
                ));
            }
            let cfg_path = dir.path().join("config.yml");
            std::fs::write(&cfg_path, cfg).unwrap_or_else(|e| panic!("{e}"));
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&cfg_path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start docker-registry: {e}"));
            let host = format!("127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut up = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                // Over TLS, an accepted connection means it is up.
                let up_now = match tls {
                    Some(_) => std::net::TcpStream::connect(&host).is_ok(),
                    None => {
                        ureq_get(&format!("http://{host}/v2/")).is_ok_and(|r| r == 200 || r == 401)
                    }
                };
                if up_now {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if up {
                return Registry {
                    host,
                    child,
                    _dir: dir,
                    auth: auth.map(|(u, p)| (u.to_owned(), p.to_owned())),
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not come up");
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }

    fn auth_header(&self) -> Option<String> {
        use base64::Engine as _;
        self.auth.as_ref().map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        })
    }

    /// Uploads a blob (monolithic upload) and returns its digest.
    pub fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha(bytes);
        let agent = Self::agent();
        let mut req = agent.post(&format!("http://{}/v2/{repo}/blobs/uploads/", self.host));
        if let Some(a) = self.auth_header() {
            req = req.header("authorization", &a);
        }
        let resp = req.send_empty().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status().as_u16(), 202, "upload start for {repo}");
        let loc = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no Location"))
            .to_owned();
        let url = if loc.starts_with("http") {
            loc
        } else {
            format!("http://{}{loc}", self.host)
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let mut req = agent
            .put(&format!("{url}{sep}digest={digest}"))
            .header("content-type", "application/octet-stream");
        if let Some(a) = self.auth_header() {
            req = req.header("authorization", &a);
        }
        let resp = req.send(bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status().as_u16(), 201, "blob put for {repo}");
        digest
    }

    /// Uploads a manifest under `reference` (tag or digest); returns its digest.
    pub fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let agent = Self::agent();
        let mut req = agent
            .put(&format!(
                "http://{}/v2/{repo}/manifests/{reference}",
                self.host
            ))
            .header("content-type", media_type);
        if let Some(a) = self.auth_header() {
            req = req.header("authorization", &a);
        }
        let mut resp = req.send(bytes).unwrap_or_else(|e| panic!("{e}"));
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(status, 201, "manifest put {repo}:{reference}: {body}");
        sha(bytes)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ureq_get(url: &str) -> Result<u16, ureq::Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    agent.get(url).call().map(|r| r.status().as_u16())
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// A tar holding `files` (path, content), fixed metadata.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(if path.starts_with("bin/") {
            0o755
        } else {
            0o644
        });
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, path, *data)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    b.into_inner().unwrap_or_else(|e| panic!("{e}"))
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap_or_else(|e| panic!("{e}"));
    e.finish().unwrap_or_else(|e| panic!("{e}"))
}

/// A valid zstd frame storing `data` in raw (uncompressed) blocks.
pub fn zstd_raw(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x28, 0xB5, 0x2F, 0xFD];
    // Frame header: single segment, 8-byte content size, no checksum.
    out.push(0b1110_0000);
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![&[][..]]
    } else {
        data.chunks(128 * 1024 - 1).collect()
    };
    for (i, c) in chunks.iter().enumerate() {
        let last = (i + 1 == chunks.len()) as u32;
        // Block type 0 (raw) in bits 1-2.
        let header = last | ((c.len() as u32) << 3);
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(c);
    }
    out
}

/// Deterministic pseudo-random bytes (incompressible test content).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A pushed image: its manifest digest, size and the digests of its parts.
#[derive(Clone, Debug)]
pub struct Pushed {
    pub manifest: String,
    pub manifest_size: usize,
    pub media_type: String,
    pub config: String,
    pub layers: Vec<String>,
}

/// Layer blobs: (compressed bytes, media type, uncompressed tar).
pub struct LayerSpec {
    pub blob: Vec<u8>,
    pub media_type: String,
    pub diff_id: String,
}

pub fn gzip_layer(files: &[(&str, &[u8])]) -> LayerSpec {
    let t = tar_of(files);
    LayerSpec {
        diff_id: sha(&t),
        blob: gzip(&t),
        media_type: OCI_LAYER_GZIP.into(),
    }
}

pub fn zstd_layer(files: &[(&str, &[u8])]) -> LayerSpec {
    let t = tar_of(files);
    LayerSpec {
        diff_id: sha(&t),
        blob: zstd_raw(&t),
        media_type: OCI_LAYER_ZSTD.into(),
    }
}

/// Config and manifest bytes for an image, in OCI or Docker flavour.
pub fn image_docs(
    os: &str,
    arch: &str,
    variant: Option<&str>,
    layers: &[LayerSpec],
    docker: bool,
) -> (Vec<u8>, Vec<u8>) {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("\"{}\"", l.diff_id))
        .collect();
    let variant_field = variant
        .map(|v| format!(",\"variant\":\"{v}\""))
        .unwrap_or_default();
    let config = format!(
        "{{\"architecture\":\"{arch}\",\"os\":\"{os}\"{variant_field},\"config\":{{\"Cmd\":[\"/bin/sh\"]}},\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[{}]}}}}",
        diff_ids.join(",")
    )
    .into_bytes();
    let (mt, cfg_mt) = if docker {
        (DOCKER_MANIFEST, DOCKER_CONFIG)
    } else {
        (OCI_MANIFEST, OCI_CONFIG)
    };
    let layer_descs: Vec<String> = layers
        .iter()
        .map(|l| {
            let lmt = if docker && l.media_type == OCI_LAYER_GZIP {
                DOCKER_LAYER
            } else {
                l.media_type.as_str()
            };
            format!(
                "{{\"mediaType\":\"{lmt}\",\"digest\":\"{}\",\"size\":{}}}",
                sha(&l.blob),
                l.blob.len()
            )
        })
        .collect();
    let manifest = format!(
        "{{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"{mt}\",\n   \"config\": {{\"mediaType\":\"{cfg_mt}\",\"digest\":\"{}\",\"size\":{}}},\n   \"layers\": [{}]\n}}",
        sha(&config),
        config.len(),
        layer_descs.join(",")
    )
    .into_bytes();
    (config, manifest)
}

impl Registry {
    /// Pushes a single-platform image; tags it with `tag` if given.
    #[allow(clippy::too_many_arguments)]
    pub fn push_image(
        &self,
        repo: &str,
        tag: Option<&str>,
        os: &str,
        arch: &str,
        variant: Option<&str>,
        layers: &[LayerSpec],
        docker: bool,
    ) -> Pushed {
        let (config, manifest) = image_docs(os, arch, variant, layers, docker);
        let config_digest = self.push_blob(repo, &config);
        let layer_digests: Vec<String> = layers
            .iter()
            .map(|l| self.push_blob(repo, &l.blob))
            .collect();
        let mt = if docker {
            DOCKER_MANIFEST
        } else {
            OCI_MANIFEST
        };
        let reference = tag.map(str::to_owned).unwrap_or_else(|| sha(&manifest));
        let digest = self.push_manifest(repo, &reference, mt, &manifest);
        Pushed {
            manifest: digest,
            manifest_size: manifest.len(),
            media_type: mt.into(),
            config: config_digest,
            layers: layer_digests,
        }
    }

    /// Pushes an index of `entries` (pushed image, platform json, extra annotations json).
    pub fn push_index(
        &self,
        repo: &str,
        tag: &str,
        entries: &[(Pushed, String, Option<String>)],
        docker: bool,
    ) -> String {
        let mt = if docker { DOCKER_LIST } else { OCI_INDEX };
        let items: Vec<String> = entries
            .iter()
            .map(|(p, platform, ann)| {
                let ann = ann.as_ref().map(|a| format!(",\"annotations\":{a}")).unwrap_or_default();
                format!(
                    "{{\"mediaType\":\"{}\",\"digest\":\"{}\",\"size\":{},\"platform\":{platform}{ann}}}",
                    p.media_type, p.manifest, p.manifest_size
                )
            })
            .collect();
        let body = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"{mt}\",\"manifests\":[{}]}}",
            items.join(",")
        );
        self.push_manifest(repo, tag, mt, body.as_bytes())
    }
}

/// A temp project directory with a bundle.toml, and bale run inside it.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    pub docker_config: PathBuf,
}

impl Project {
    /// A copy of the repository's demo in `demo/`, with a fresh passwordless
    /// key pair in `keys/`.
    pub fn demo() -> Project {
        let p = Project::new("");
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("demo"),
            &p.path().join("demo"),
        );
        p.keygen();
        p
    }

    /// Builds the demo, signed with `keys/k.sec`, into `out`.
    pub fn build_demo(&self, out: &str) -> PathBuf {
        self.try_build_demo(out).ok();
        self.path().join(out)
    }

    /// `bale build` of the demo into `out`, signed, whatever its outcome.
    pub fn try_build_demo(&self, out: &str) -> Run {
        self.bale(&[
            "build",
            "-f",
            "demo/bundle.toml",
            "--offline",
            "--sign-key",
            "keys/k.sec",
            "-o",
            out,
        ])
    }

    pub fn new(bundle_toml: &str) -> Project {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("bundle.toml"), bundle_toml)
            .unwrap_or_else(|e| panic!("{e}"));
        let store = dir.path().join("store");
        let docker_config = dir.path().join("docker-config");
        std::fs::create_dir_all(&docker_config).unwrap_or_else(|e| panic!("{e}"));
        // Podman refuses a DOCKER_CONFIG directory without the file.
        std::fs::write(docker_config.join("config.json"), "{}\n").unwrap_or_else(|e| panic!("{e}"));
        Project {
            dir,
            store,
            docker_config,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.dir.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(p, content).unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(rel)).unwrap_or_default()
    }

    pub fn bale(&self, args: &[&str]) -> Run {
        self.bale_env(args, &[])
    }

    pub fn bale_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bale"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("BALE_MIRRORS")
            .env_remove("BALE_CONFIG")
            .env_remove("BALE_INSECURE_REGISTRIES")
            .env("BALE_STORE", &self.store)
            .env("DOCKER_CONFIG", &self.docker_config)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run bale: {e}"));
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            out,
        }
    }

    /// A passwordless key pair in `keys/k.pub` and `keys/k.sec`.
    pub fn keygen(&self) {
        self.bale(&[
            "keygen",
            "--public-key",
            "keys/k.pub",
            "--secret-key",
            "keys/k.sec",
            "--no-password",
        ])
        .ok();
    }

    /// `bale install BUNDLE` into `target` with `--runtime none` and `keys/k.pub`.
    pub fn install_none(&self, bundle: &str, target: &str) -> Run {
        self.install_none_with(bundle, target, &[])
    }

    /// [`Project::install_none`], then `extra`.
    pub fn install_none_with(&self, bundle: &str, target: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            "install",
            bundle,
            "--public-key",
            "keys/k.pub",
            "--target",
            target,
            "--runtime",
            "none",
        ];
        args.extend_from_slice(extra);
        self.bale(&args)
    }

    /// `bale install BUNDLE` into `target` with `--runtime containerd` at
    /// `address` and `keys/k.pub`, then `extra`.
    pub fn install_containerd(
        &self,
        bundle: &str,
        target: &str,
        address: &str,
        extra: &[&str],
    ) -> Run {
        let mut args = vec![
            "install",
            bundle,
            "--public-key",
            "keys/k.pub",
            "--target",
            target,
            "--runtime",
            "containerd",
            "--containerd-address",
            address,
        ];
        args.extend_from_slice(extra);
        self.bale(&args)
    }

    /// `bale audit` of `target` with `--runtime containerd` at `address`,
    /// then `extra` (a bundle and its key, `--json`).
    pub fn audit_containerd(&self, target: &str, address: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            "audit",
            "--target",
            target,
            "--runtime",
            "containerd",
            "--containerd-address",
            address,
        ];
        args.extend_from_slice(extra);
        self.bale(&args)
    }

    /// Every blob file in the store, with whether it hashes to its name.
    pub fn store_blobs(&self) -> Vec<(String, bool)> {
        let dir = self.store.join("blobs").join("sha256");
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let bytes = std::fs::read(e.path()).unwrap_or_default();
                let ok = sha(&bytes) == format!("sha256:{name}");
                out.push((format!("sha256:{name}"), ok));
            }
        }
        out.sort();
        out
    }
}

/// The outcome of one bale run, printed in full when an assertion fails.
pub struct Run {
    pub args: Vec<String>,
    pub out: Output,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    pub fn describe(&self) -> String {
        format!(
            "bale {}\nexit: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.args.join(" "),
            self.code(),
            self.stdout(),
            self.stderr()
        )
    }
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code(), 0, "{}", self.describe());
        self
    }
    #[track_caller]
    pub fn fails(&self, code: i32) -> &Self {
        assert_eq!(self.code(), code, "{}", self.describe());
        self
    }
    /// Asserts that stderr contains `needle`, showing the whole run if not.
    #[track_caller]
    pub fn says(&self, needle: &str) -> &Self {
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.describe()
        );
        self
    }
    /// The last JSON line on stdout.
    pub fn summary(&self) -> serde_json::Value {
        self.stdout()
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("no JSON summary\n{}", self.describe()))
    }
}

/// The answer to `GET /` on a loopback port, waiting up to 10 s for it.
pub fn http_get(port: u16) -> String {
    use std::io::{Read as _, Write as _};
    for _ in 0..50 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if !buf.is_empty() {
                return buf;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("nothing answers on 127.0.0.1:{port}");
}

/// `skopeo inspect --raw` of a loopback registry reference.
pub fn skopeo_raw(reference: &str) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ])
        .output()
        .unwrap_or_else(|e| panic!("skopeo: {e}"));
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Copies a directory tree (files and directories only).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{e}"));
    for e in std::fs::read_dir(from)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// Writes an OCI image layout at `dir` holding one linux/amd64 image named
/// `name` (its `org.opencontainers.image.ref.name`) with `layers`.
pub fn write_oci_layout(dir: &Path, name: &str, layers: &[LayerSpec]) {
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).unwrap_or_else(|e| panic!("{e}"));
    let put = |bytes: &[u8]| {
        let d = sha(bytes);
        std::fs::write(blobs.join(&d["sha256:".len()..]), bytes).unwrap_or_else(|e| panic!("{e}"));
        d
    };
    let (config, manifest) = image_docs("linux", "amd64", None, layers, false);
    put(&config);
    for l in layers {
        put(&l.blob);
    }
    let m = put(&manifest);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{m}","size":{},"platform":{{"architecture":"amd64","os":"linux"}},"annotations":{{"org.opencontainers.image.ref.name":"{name}"}}}}]}}"#,
            manifest.len()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

/// A self-signed EC certificate and key for `cn`, as `site.crt` and
/// `site.key` in `dir` (openssl, as a site's own PKI would issue one).
pub fn self_signed_cert(dir: &Path, cn: &str) {
    let subject = format!("/CN={cn}");
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "30",
            "-subj",
            &subject,
            "-keyout",
            "site.key",
            "-out",
            "site.crt",
        ],
        dir,
    );
}

/// Runs `openssl ARGS` in `dir`, asserting success; returns its stdout.
pub fn openssl(args: &[&str], dir: &Path) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A site's own CA (`ca.crt`, `ca.key`) and a certificate it issued for
/// 127.0.0.1 (`tls.crt`, `tls.key`, an IP SAN, not a CA), in `dir`.
pub fn loopback_cert(dir: &Path) {
    std::fs::write(
        dir.join("tls.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "2",
                "-subj",
                "/CN=bale test site CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "tls.key",
                "-out",
                "tls.csr",
            ],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "tls.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "tls.ext",
            "-out",
            "tls.crt",
        ],
    ];
    for args in steps {
        openssl(&args, dir);
    }
}

/// `caddy validate` of a rendered Caddyfile, with caddy's home in `home`.
pub fn caddy_validate(home: &Path, file: &Path) {
    let out = Command::new("caddy")
        .args(["validate", "--adapter", "caddyfile", "--config"])
        .arg(file)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("caddy-data"))
        .env("XDG_CONFIG_HOME", home.join("caddy-config"))
        .output()
        .unwrap_or_else(|e| panic!("caddy: {e}"));
    assert!(
        out.status.success(),
        "caddy validate {}:\n{}\n{}",
        file.display(),
        std::fs::read_to_string(file).unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr)
    );
}
