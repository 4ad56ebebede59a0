//! The command line: flags (one definition for help, completions and the
//! man page), output, and one function per command.

pub mod args;
pub mod bundle;
pub mod help;
pub mod output;
pub mod pipeline;
pub mod site;
