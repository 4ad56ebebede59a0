//! The `bale` command: parses arguments, calls the library, prints.

/// `eprintln!` for text: escaped for a terminal.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::output::emit($crate::cli::output::Stream::Err, &format!("{}\n", format_args!($($arg)*)), false)
    };
}

/// `eprint!` for text: escaped for a terminal.
macro_rules! errp {
    ($($arg:tt)*) => {
        $crate::cli::output::emit($crate::cli::output::Stream::Err, &format!($($arg)*), false)
    };
}

/// `println!` for a JSON document or line: as serialized, a closed pipe
/// ends bale.
macro_rules! jsonln {
    ($($arg:tt)*) => {
        $crate::cli::output::emit($crate::cli::output::Stream::Out, &format!("{}\n", format_args!($($arg)*)), true)
    };
}

mod cli;

use std::process::ExitCode;

use clap::FromArgMatches as _;

use bale::error::exit;
use cli::args::{Cli, Command};
use cli::{bundle, help, output, pipeline, site};

fn run(command: Command) -> Result<(), bale::Error> {
    match command {
        Command::Lock {
            spec,
            update,
            check,
            net,
        } => pipeline::lock(&spec, update, check, &net),
        Command::Outdated { spec, json, net } => pipeline::outdated(&spec, json.json, &net),
        Command::Fetch {
            spec,
            blobs,
            json,
            net,
        } => pipeline::fetch(&spec, blobs, json, &net),
        Command::Build(a) => pipeline::build(a),
        Command::Keygen {
            public_key,
            secret_key,
            no_password,
            force,
        } => pipeline::keygen(&public_key, &secret_key, no_password, force),
        Command::Verify {
            bundle,
            public_key,
            allow_unsigned,
            base,
            json,
        } => bundle::verify(
            &bundle,
            public_key.as_deref(),
            allow_unsigned,
            base.as_deref(),
            json.json,
        ),
        Command::Install(a) => site::install(a),
        Command::Audit {
            bundle,
            target,
            public_key,
            report,
            runtime,
            json,
        } => site::audit(
            bundle.as_deref(),
            &target,
            public_key.as_deref(),
            report.as_deref(),
            &runtime,
            json.json,
        ),
        Command::Inspect { bundle, json } => bundle::inspect(&bundle, json.json),
        Command::Sbom {
            bundle,
            public_key,
            allow_unsigned,
        } => bundle::sbom(&bundle, public_key.as_deref(), allow_unsigned),
        Command::Serve(a) => bundle::serve(a),
        Command::Push(a) => bundle::push(a),
        Command::Split(a) => pipeline::split(a),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut help::command(), "bale", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { command, dir } => help::man(command.as_deref(), dir.as_deref()),
    }
}

/// Whether the command prints JSON, and whether it streams events (whose
/// closing object then carries `"event": "summary"`).
fn json_mode(command: &Command) -> Option<Option<&'static str>> {
    match command {
        Command::Fetch { json: true, .. } => Some(Some("summary")),
        Command::Build(a) if a.json.json => Some(None),
        Command::Split(a) if a.json.json => Some(None),
        Command::Install(a) if a.json.json => Some(None),
        Command::Serve(a) if a.json => Some(Some("summary")),
        Command::Push(a) if a.json.json => Some(Some("summary")),
        Command::Outdated { json, .. }
        | Command::Verify { json, .. }
        | Command::Audit { json, .. }
        | Command::Inspect { json, .. }
            if json.json =>
        {
            Some(None)
        }
        _ => None,
    }
}

fn main() -> ExitCode {
    let cli = match help::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            if !e.use_stderr() {
                return ExitCode::SUCCESS;
            }
            // `--json` promises a closing result object, usage errors too.
            if std::env::args_os().any(|a| a == "--json") {
                output::result_line(
                    serde_json::json!({
                        "error": e.kind().to_string(),
                        "exit_code": exit::USAGE,
                    }),
                    false,
                );
            }
            return ExitCode::from(exit::USAGE as u8);
        }
    };
    let json = json_mode(&cli.command);
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(event) = json {
                output::failure(&e, event);
            }
            errln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
