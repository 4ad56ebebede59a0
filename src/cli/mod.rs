//! The command line: flags (one definition for help, completions and the
//! man page), resolved once into a command and an output mode, then run.

pub mod args;
pub mod command;
pub mod help;
pub mod keys;
pub mod output;
pub mod resolve;

use args::Command;
use command::Run;
use output::{Json, Output};

/// A command line resolved: what to run, and how to print.
pub struct Resolved {
    /// The output mode.
    pub output: Output,
    /// The command.
    pub command: Box<dyn Run>,
}

/// `--json` of a command that prints one document, or of one that
/// streams events.
fn json(on: bool, lines: bool) -> Json {
    match (on, lines) {
        (false, _) => Json::Off,
        (true, false) => Json::Document,
        (true, true) => Json::Lines,
    }
}

/// Resolves the parsed command line, once: every flag into the library's
/// request for the command, and the output mode.
pub fn resolve(command: Command) -> Resolved {
    use command::*;
    let (mode, command): (Json, Box<dyn Run>) = match command {
        Command::Lock {
            spec,
            update,
            check,
            net,
        } => (
            Json::Off,
            Box::new(lock::Lock::new(spec, update, check, net)),
        ),
        Command::Outdated { spec, json: j, net } => (
            json(j.json, false),
            Box::new(outdated::Outdated {
                spec: resolve::spec(spec, net),
            }),
        ),
        Command::Fetch {
            spec,
            blobs,
            json: j,
            net,
        } => (
            json(j.json, true),
            Box::new(fetch::Fetch::new(spec, blobs, net)),
        ),
        Command::Build(a) => (json(a.json.json, false), Box::new(build::Build::new(a))),
        Command::Keygen {
            public_key,
            secret_key,
            no_password,
            force,
        } => (
            Json::Off,
            Box::new(keygen::Keygen::new(
                public_key,
                secret_key,
                no_password,
                force,
            )),
        ),
        Command::Verify {
            bundle,
            public_key,
            allow_unsigned,
            base,
            json: j,
        } => (
            json(j.json, false),
            Box::new(verify::Verify::new(
                bundle,
                public_key,
                allow_unsigned,
                base,
            )),
        ),
        Command::Install(a) => (json(a.json.json, false), Box::new(install::Install::new(a))),
        Command::Audit(a) => (json(a.json.json, false), Box::new(audit::Audit::new(a))),
        Command::VerifyReceipt {
            file,
            public_key,
            json: j,
        } => (
            json(j.json, false),
            Box::new(audit::VerifyReceipt { file, public_key }),
        ),
        Command::Rollback(a) => (
            json(a.json.json, false),
            Box::new(rollback::Rollback::new(a)),
        ),
        Command::Snapshot(a) => (
            json(a.json.json, false),
            Box::new(snapshot::Snapshot::new(a)),
        ),
        Command::Restore(a) => (json(a.json.json, false), Box::new(restore::Restore::new(a))),
        Command::Uninstall(a) => (
            json(a.json.json, false),
            Box::new(uninstall::Uninstall::new(a)),
        ),
        Command::Prune(a) => (json(a.json.json, false), Box::new(prune::Prune::new(a))),
        Command::Status(a) => (json(a.json.json, false), Box::new(status::Status::new(a))),
        Command::Scan(a) => (json(a.json.json, false), Box::new(scan::Scan::new(a))),
        Command::Inspect { bundle, json: j } => {
            (json(j.json, false), Box::new(inspect::Inspect { bundle }))
        }
        Command::Sbom {
            bundle,
            public_key,
            allow_unsigned,
            format,
        } => (
            Json::Off,
            Box::new(sbom::Sbom {
                bundle,
                public_key,
                allow_unsigned,
                format,
            }),
        ),
        Command::Serve(a) => (json(a.json.json, true), Box::new(serve::Serve::new(a))),
        Command::Push(a) => (json(a.json.json, true), Box::new(push::Push::new(a))),
        Command::Split(a) => (json(a.json.json, false), Box::new(split::Split::new(a))),
        Command::Completions { shell } => (Json::Off, Box::new(meta::Completions { shell })),
        Command::Man { command, dir } => (Json::Off, Box::new(meta::Man { command, dir })),
    };
    Resolved {
        output: Output::new(mode),
        command,
    }
}
