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
use cli::args::Cli;
use cli::{help, output};

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
    let resolved = cli::resolve(cli.command);
    match resolved.command.run(&resolved.output) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            resolved.output.failure(&e);
            errln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
