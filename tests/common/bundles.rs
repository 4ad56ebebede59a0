//! One fixture builder for the bundles that `serve` and `push` carry out:
//! the demo's two OCI images (busybox, so they run) and a Docker schema 2
//! manifest list of two platforms from a loopback registry.

use std::path::Path;

use super::*;

/// A built and signed `served.bale` in its project, with what went in.
pub struct MultiBundle {
    pub p: Project,
    pub reg: Registry,
    /// Digest of the `multi/app:2.0` manifest list.
    pub list: String,
    pub amd64: Pushed,
    pub arm64: Pushed,
}

/// `app_layer` bytes of noise in the amd64 app layer (nearly that much
/// gzip); `platforms` as bundle.toml locks them.
pub fn multi_bundle(app_layer: usize, platforms: &[&str]) -> MultiBundle {
    let reg = Registry::start();
    let amd64 = reg.push_image(
        "multi/app",
        None,
        "linux",
        "amd64",
        None,
        &[
            gzip_layer(&[("etc/base", b"base")]),
            gzip_layer(&[("bin/app", &noise(7, app_layer))]),
        ],
        true,
    );
    let arm64 = reg.push_image(
        "multi/app",
        None,
        "linux",
        "arm64",
        None,
        &[gzip_layer(&[("bin/app", &noise(8, 1000))])],
        true,
    );
    let list = reg.push_index(
        "multi/app",
        "2.0",
        &[
            (
                amd64.clone(),
                r#"{"os":"linux","architecture":"amd64"}"#.into(),
                None,
            ),
            (
                arm64.clone(),
                r#"{"os":"linux","architecture":"arm64"}"#.into(),
                None,
            ),
        ],
        true,
    );
    let platforms: Vec<String> = platforms.iter().map(|p| format!("\"{p}\"")).collect();
    let p = Project::new(&format!(
        "[bundle]\nname = \"served\"\nversion = \"1.0.0\"\nplatforms = [{}]\n[images]\napp = \"{}/multi/app:2.0\"\n",
        platforms.join(", "),
        reg.host
    ));
    if platforms.len() == 1 {
        // The demo images are linux/amd64 only.
        p.write(
            "bundle.toml",
            &(p.read("bundle.toml")
                + "web = \"oci:images:localhost/bale-demo/web:1.0\"\nworker = \"oci:images:localhost/bale-demo/worker:1.0\"\n"),
        );
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/images"),
            &p.path().join("images"),
        );
    }
    p.keygen();
    p.bale(&["lock"]).ok();
    p.bale(&["build", "--sign-key", "keys/k.sec", "-o", "served.bale"])
        .ok();
    MultiBundle {
        p,
        reg,
        list,
        amd64,
        arm64,
    }
}

/// The locked digest of `service`'s first platform manifest.
pub fn locked_manifest(p: &Project, service: &str) -> String {
    let lock: toml::Value =
        toml::from_str(&p.read("bundle.lock")).unwrap_or_else(|e| panic!("{e}"));
    lock["image"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["service"].as_str() == Some(service)))
        .and_then(|i| i["platform"][0]["manifest"].as_str())
        .unwrap_or_else(|| panic!("no {service} in the lock"))
        .to_owned()
}
