//! What `--help` and the man pages say beyond the flags: one example per
//! command and the exit codes, written once here and attached to the same
//! command definitions that parse the command line.

use std::path::Path;

use clap::CommandFactory as _;

use super::args::Cli;

/// Examples, by command.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "lock",
        "bale lock                       # resolve every tag into bundle.lock\n  bale lock --check               # CI: exit 4 if bundle.lock disagrees with bundle.toml",
    ),
    (
        "outdated",
        "bale outdated --json            # which locked tags moved upstream (exit 4 if any)",
    ),
    (
        "fetch",
        "bale fetch --locked             # every locked blob into the store, verified",
    ),
    (
        "build",
        "bale build --locked --sign-key bale.key\n  bale build --locked --sign-key bale.key --base borgstack-1.0.0.bale   # a delta",
    ),
    (
        "keygen",
        "bale keygen --public-key bale.pub --secret-key bale.key",
    ),
    (
        "verify",
        "bale verify borgstack-1.0.0.bale --public-key bale.pub --json",
    ),
    (
        "install",
        "bale install borgstack-1.0.0.bale --public-key bale.pub --target /srv/borgstack --values site.toml --dry-run\n  bale install borgstack-1.0.0.bale --public-key bale.pub --target /srv/borgstack --values site.toml --up",
    ),
    (
        "audit",
        "bale audit --target /srv/borgstack --report audit.html\n  bale audit --target /srv/borgstack --db osv/ --receipt receipt.json --sign-key site.sec   # scanned, with a signed receipt",
    ),
    (
        "verify-receipt",
        "bale verify-receipt receipt.json --public-key site.pub",
    ),
    (
        "scan",
        "bale scan borgstack-1.0.0.bale --public-key bale.pub --db Debian-all.zip --db Alpine-all.zip --fail-on high\n  bale scan --target /srv/borgstack --db osv/ --vex site.vex.json --report scan.html",
    ),
    (
        "rollback",
        "bale rollback --target /srv/borgstack --up        # back to the release kept before this one",
    ),
    (
        "snapshot",
        "bale snapshot --target /srv/borgstack     # every volume and [data] path, services stopped for the copy",
    ),
    (
        "restore",
        "bale restore --target /srv/borgstack      # the newest snapshot back, with its release, started",
    ),
    (
        "uninstall",
        "bale uninstall --target /srv/borgstack    # keeps volumes, .env and snapshots\n  bale uninstall --target /srv/borgstack --purge --yes   # removes them too",
    ),
    (
        "prune",
        "bale prune --target /srv/borgstack --keep 2 --dry-run   # what older releases, images and snapshots would free",
    ),
    (
        "status",
        "bale status --target /srv/borgstack      # releases kept, each service's state and health",
    ),
    (
        "split",
        "bale split borgstack-1.0.0.bale --sign-key bale.key   # parts under 4 GiB; cat rejoins them",
    ),
    (
        "push",
        "bale push borgstack-1.0.0.bale --public-key bale.pub --to registry.site:5000/borgstack --ca-cert site-ca.crt",
    ),
    (
        "serve",
        "bale serve borgstack-1.0.0.bale --public-key bale.pub --listen 0.0.0.0:5000 --tls-cert site.crt --tls-key site.key",
    ),
    ("inspect", "bale inspect borgstack-1.0.0.bale"),
    (
        "sbom",
        "bale sbom borgstack-1.0.0.bale --public-key bale.pub > borgstack.spdx.json\n  bale sbom borgstack-1.0.0.bale --public-key bale.pub --format cyclonedx > borgstack.cdx.json",
    ),
    (
        "completions",
        "bale completions bash > /etc/bash_completion.d/bale",
    ),
    (
        "man",
        "bale man lock | man -l -\n  bale man --dir /usr/local/share/man/man1   # bale.1 and a page per command",
    ),
];

/// The exit codes (bale::error::exit), as every command uses them.
const EXIT_STATUS: &str = "Exit status:
  0  success
  1  a failure not listed below (I/O, the store)
  2  a bad command line
  3  an input missing, unreadable or invalid (bundle.toml, bundle.lock, a bundle, a key, site values, a template)
  4  bundle.lock missing or out of date where it must not change; tags that moved (outdated)
  5  a registry or the network failed
  6  content that does not match its digest; a bundle that fails verification; an audit with findings; a receipt that does not verify
  7  refused by policy (a downgrade, another bundle in the target, a delta over another release, preflight)
  8  the container runtime failed, or services did not become healthy
  9  an upgrade failed and was rolled back: the previous release runs again on its data
  10 scan --fail-on: an open finding at that level or above";

/// The command line: the derive's definitions, each command given its
/// examples and the exit codes after its long help.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command().after_long_help(EXIT_STATUS);
    for (name, example) in EXAMPLES {
        cmd = cmd.mut_subcommand(name, |c| {
            c.after_long_help(format!("Examples:\n  {example}\n\n{EXIT_STATUS}"))
        });
    }
    cmd
}

/// The man page of `bale`, or of one of its commands (`bale-lock(1)`).
fn page(name: Option<&str>) -> Option<clap_mangen::Man> {
    let mut cmd = command().disable_help_subcommand(true);
    cmd.build();
    let cmd = match name {
        None => cmd,
        Some(n) => cmd.find_subcommand(n)?.clone(),
    };
    Some(clap_mangen::Man::new(cmd))
}

/// `bale man [COMMAND]` on stdout, or every page into `dir`.
pub fn man(command: Option<&str>, dir: Option<&Path>) -> Result<(), bale::Error> {
    let out = |source| bale::Error::Output { source };
    let render = |p: &clap_mangen::Man| {
        let mut bytes = Vec::new();
        p.render(&mut bytes).map(|()| bytes).map_err(out)
    };
    // Every command the parser knows, not a list kept beside it.
    let names: Vec<String> = self::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).map_err(out)?;
        let pages = std::iter::once(None).chain(names.iter().map(|n| Some(n.as_str())));
        for p in pages.filter_map(page) {
            let path = dir.join(p.get_filename());
            bale::store::write_atomic(&path, &render(&p)?)?;
            errln!("wrote {}", path.display());
        }
        return Ok(());
    }
    let p = page(command).ok_or_else(|| {
        bale::Error::Usage(format!(
            "bale man {}: no such command (one of: {})",
            command.unwrap_or_default(),
            names.join(", ")
        ))
    })?;
    super::output::emit(
        super::output::Stream::Out,
        &String::from_utf8_lossy(&render(&p)?),
        true,
    );
    Ok(())
}
