//! `bale completions` and `bale man`: the command line describing itself.

use std::path::PathBuf;

use super::Run;
use crate::cli::{help, output::Output};

/// `bale completions SHELL`.
pub struct Completions {
    /// The shell.
    pub shell: clap_complete::Shell,
}

impl Run for Completions {
    fn run(&self, _out: &Output) -> Result<(), bale::Error> {
        let mut script = Vec::new();
        clap_complete::generate(self.shell, &mut help::command(), "bale", &mut script);
        crate::cli::output::emit(
            crate::cli::output::Stream::Out,
            &String::from_utf8_lossy(&script),
            true,
        );
        Ok(())
    }
}

/// `bale man [COMMAND] [--dir DIR]`.
pub struct Man {
    /// One command's page.
    pub command: Option<String>,
    /// Every page into this directory.
    pub dir: Option<PathBuf>,
}

impl Run for Man {
    fn run(&self, _out: &Output) -> Result<(), bale::Error> {
        help::man(self.command.as_deref(), self.dir.as_deref())
    }
}
