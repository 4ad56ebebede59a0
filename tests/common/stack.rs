//! The one fixture builder for bundles and stacks: a bundle.toml put
//! together from its parts, the OCI layouts and files it names written,
//! a key pair made, and, when asked, the bundle locked and built.

#![allow(dead_code)]

use std::path::PathBuf;

use super::{LayerSpec, Project, Pushed, Registry, gzip_layer, write_oci_layout};

/// A stack being described.
pub struct Stack {
    name: String,
    version: String,
    platforms: Vec<String>,
    images: Vec<(String, String)>,
    layouts: Vec<(String, String, Vec<LayerSpec>)>,
    sections: Vec<String>,
    files: Vec<(String, String)>,
    keys: bool,
}

impl Stack {
    /// Bundle `name`, version 1.0.0, no images yet.
    pub fn new(name: &str) -> Stack {
        Stack {
            name: name.to_owned(),
            version: "1.0.0".to_owned(),
            platforms: Vec::new(),
            images: Vec::new(),
            layouts: Vec::new(),
            sections: Vec::new(),
            files: Vec::new(),
            keys: false,
        }
    }

    /// Another version.
    pub fn version(mut self, v: &str) -> Stack {
        self.version = v.to_owned();
        self
    }

    /// `[bundle] platforms`.
    pub fn platforms(mut self, platforms: &[&str]) -> Stack {
        self.platforms = platforms.iter().map(|p| (*p).to_owned()).collect();
        self
    }

    /// Service `service` runs `reference` (a registry reference or `oci:…`).
    pub fn image(mut self, service: &str, reference: &str) -> Stack {
        self.images.push((service.to_owned(), reference.to_owned()));
        self
    }

    /// Service `service` runs image `name` from an OCI layout written at
    /// `dir` with `layers`.
    pub fn layout_image(
        mut self,
        service: &str,
        dir: &str,
        name: &str,
        layers: Vec<LayerSpec>,
    ) -> Stack {
        self.images
            .push((service.to_owned(), format!("oci:{dir}:{name}")));
        self.layouts.push((dir.to_owned(), name.to_owned(), layers));
        self
    }

    /// More of bundle.toml, as written (`[compose]`, `[[overlays]]`, …).
    pub fn toml(mut self, section: &str) -> Stack {
        self.sections.push(section.to_owned());
        self
    }

    /// A file of the project (a compose file, an overlay's source).
    pub fn file(mut self, rel: &str, content: &str) -> Stack {
        self.files.push((rel.to_owned(), content.to_owned()));
        self
    }

    /// A passwordless key pair in `keys/k.pub` and `keys/k.sec` too.
    pub fn keys(mut self) -> Stack {
        self.keys = true;
        self
    }

    /// The bundle.toml described so far.
    pub fn toml_text(&self) -> String {
        let mut s = format!(
            "[bundle]\nname = \"{}\"\nversion = \"{}\"\n",
            self.name, self.version
        );
        if !self.platforms.is_empty() {
            let p: Vec<String> = self.platforms.iter().map(|p| format!("\"{p}\"")).collect();
            s.push_str(&format!("platforms = [{}]\n", p.join(", ")));
        }
        s.push_str("[images]\n");
        for (service, reference) in &self.images {
            s.push_str(&format!("{service} = \"{reference}\"\n"));
        }
        for section in &self.sections {
            s.push('\n');
            s.push_str(section);
            if !section.ends_with('\n') {
                s.push('\n');
            }
        }
        s
    }

    /// The project on disk: bundle.toml, layouts, files (and keys, when
    /// asked for).
    pub fn project(self) -> Project {
        let p = Project::new(&self.toml_text());
        for (dir, name, layers) in &self.layouts {
            write_oci_layout(&p.path().join(dir), name, layers);
        }
        for (rel, content) in &self.files {
            p.write(rel, content);
        }
        if self.keys {
            p.keygen();
        }
        p
    }

    /// The project with its bundle locked and built, signed with
    /// `keys/k.sec`, into `out`.
    pub fn built(self, out: &str) -> (Project, PathBuf) {
        let p = self.keys().project();
        p.bale(&["build", "--sign-key", "keys/k.sec", "-o", out])
            .ok();
        let path = p.path().join(out);
        (p, path)
    }
}

impl Registry {
    /// A linux/amd64 image of one layer holding file `path` = `content`,
    /// pushed as `repo:tag`.
    pub fn push_app(&self, repo: &str, tag: &str, path: &str, content: &[u8]) -> Pushed {
        self.push_image(
            repo,
            Some(tag),
            "linux",
            "amd64",
            None,
            &[gzip_layer(&[(path, content)])],
            false,
        )
    }
}
