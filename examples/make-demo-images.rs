//! Writes the demo's OCI image layout (`demo/images`): two small images on a
//! shared busybox layer, with fixed metadata so the bytes are reproducible
//! from the same busybox binary.
//!
//! `cargo run --example make-demo-images -- /bin/busybox demo/images`
//!
//! The busybox binary is Debian's `busybox-static` (GPL-2.0; its source is
//! Debian's `busybox` source package).

use std::io::Write;
use std::path::Path;

use sha2::{Digest as _, Sha256};

fn sha(b: &[u8]) -> String {
    let mut s = String::from("sha256:");
    for x in Sha256::digest(b).as_slice() {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8], u32),
    Link(&'a str, &'a str),
}

fn tar_of(entries: &[Entry]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            Entry::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_cksum();
                b.append_data(&mut h, p, std::io::empty())?;
            }
            Entry::File(p, data, mode) => {
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                h.set_cksum();
                b.append_data(&mut h, p, *data)?;
            }
            Entry::Link(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, target)?;
            }
        }
    }
    b.into_inner()
}

fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    // gzip header mtime is 0 and OS byte fixed by flate2: reproducible.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data)?;
    e.finish()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (busybox, out) = match args.as_slice() {
        [_, b, o] => (b.clone(), o.clone()),
        _ => return Err("usage: make-demo-images BUSYBOX OUT_DIR".into()),
    };
    let bin = std::fs::read(&busybox)?;
    let out = Path::new(&out);
    let blobs = out.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs)?;
    let put = |bytes: &[u8]| -> std::io::Result<(String, usize)> {
        let d = sha(bytes);
        std::fs::write(blobs.join(&d["sha256:".len()..]), bytes)?;
        Ok((d, bytes.len()))
    };

    let base_tar = tar_of(&[
        Entry::Dir("bin/"),
        Entry::File("bin/busybox", &bin, 0o755),
        Entry::Link("bin/sh", "busybox"),
        Entry::Dir("tmp/"),
    ])?;
    let base = gzip(&base_tar)?;
    let page = b"<!doctype html><title>bale demo</title><p>Served from an offline bundle.</p>\n";
    let web_tar = tar_of(&[
        Entry::Dir("www/"),
        Entry::File("www/index.html", page, 0o644),
    ])?;
    let web_layer = gzip(&web_tar)?;
    let (base_d, base_n) = put(&base)?;
    let (web_d, web_n) = put(&web_layer)?;
    let layer_mt = "application/vnd.oci.image.layer.v1.tar+gzip";

    // (name, command, layers as (digest, size, diff id))
    type Layer = (String, usize, String);
    let images: [(&str, &str, Vec<Layer>); 2] = [
        (
            "localhost/bale-demo/web:1.0",
            r#"["/bin/busybox","httpd","-f","-p","8080","-h","/www"]"#,
            vec![
                (base_d.clone(), base_n, sha(&base_tar)),
                (web_d, web_n, sha(&web_tar)),
            ],
        ),
        (
            "localhost/bale-demo/worker:1.0",
            r#"["/bin/sh","-c","while true; do date; sleep 60; done"]"#,
            vec![(base_d, base_n, sha(&base_tar))],
        ),
    ];
    let mut index_entries = Vec::new();
    for (name, cmd, layers) in images {
        let diff_ids: Vec<String> = layers.iter().map(|l| format!("\"{}\"", l.2)).collect();
        let config = format!(
            r#"{{"architecture":"amd64","config":{{"Cmd":{cmd},"Env":["PATH=/bin"],"ExposedPorts":{{"8080/tcp":{{}}}}}},"created":"1970-01-01T00:00:00Z","os":"linux","rootfs":{{"diff_ids":[{}],"type":"layers"}}}}"#,
            diff_ids.join(",")
        );
        let (cfg_d, cfg_n) = put(config.as_bytes())?;
        let layer_descs: Vec<String> = layers
            .iter()
            .map(|(d, n, _)| format!(r#"{{"mediaType":"{layer_mt}","digest":"{d}","size":{n}}}"#))
            .collect();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cfg_d}","size":{cfg_n}}},"layers":[{}]}}"#,
            layer_descs.join(",")
        );
        let (m_d, m_n) = put(manifest.as_bytes())?;
        index_entries.push(format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{m_d}","size":{m_n},"platform":{{"architecture":"amd64","os":"linux"}},"annotations":{{"org.opencontainers.image.ref.name":"{name}"}}}}"#
        ));
    }
    std::fs::write(out.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
    std::fs::write(
        out.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
            index_entries.join(",")
        ),
    )?;
    Ok(())
}
