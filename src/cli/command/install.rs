//! `bale install`.

use std::io::Write;

use bale::install::{Action, InstallReport};
use bale::ops::install::{InstallOutcome, InstallRequest};

use super::Run;
use crate::cli::args::InstallArgs;
use crate::cli::output::{Output, Terminal};
use crate::cli::resolve;

/// `bale install`, resolved.
pub struct Install {
    /// What to install, where, how.
    pub request: InstallRequest,
}

impl Install {
    /// From `bale install`'s flags.
    pub fn new(a: InstallArgs) -> Install {
        Install {
            request: InstallRequest {
                bundle: a.bundle,
                public_key: a.public_key,
                target: a.target,
                runtime: resolve::runtime(a.runtime),
                up: a.up,
                timeout: std::time::Duration::from_secs(a.timeout),
                allow_downgrade: a.allow_downgrade,
                values: bale::install::Supplied {
                    set: a.set,
                    file: a.values,
                },
                skip_preflight: a.skip_preflight,
                dry_run: a.dry_run,
                base: a.base,
                snapshot: !a.no_snapshot,
                rollback: !a.no_rollback,
            },
        }
    }
}

impl Run for Install {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        let ask = prompt;
        let prompt = out.interactive.then_some(&ask as bale::install::Prompt<'_>);
        match bale::ops::install::run(&self.request, prompt)? {
            InstallOutcome::Planned(plan) if out.is_json() => out.result(&plan, true),
            InstallOutcome::Planned(plan) => print_plan(&plan),
            InstallOutcome::Installed(report) if out.is_json() => out.result(&report, true),
            InstallOutcome::Installed(report) => print_report(&report),
        }
        Ok(())
    }
}

/// Asks for a missing value on the terminal; a secret one is not echoed.
fn prompt(spec: &bale::spec::ValueSpec) -> Option<String> {
    let mut question = spec.name.clone();
    if let Some(d) = &spec.description {
        question.push_str(&format!(" ({d})"));
    }
    if !spec.choices.is_empty() {
        question.push_str(&format!(" [{}]", spec.choices.join("|")));
    }
    if spec.kind == bale::spec::ValueType::List {
        question.push_str(" [comma-separated]");
    }
    question.push_str(": ");
    if spec.secret {
        return rpassword::prompt_password(question).ok();
    }
    errp!("{question}");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).ok()?;
    Some(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// What the install did, as text on stderr.
fn print_report(report: &InstallReport) {
    let mut err = Terminal::stderr();
    let _ = writeln!(
        err,
        "{} {} {}{} ({})",
        report.name,
        report.version,
        match report.action {
            Action::Installed => "installed",
            Action::Upgraded => "upgraded",
            Action::Downgraded => "downgraded",
            Action::Unchanged => "already installed; nothing changed",
            Action::Repaired => "already installed; drifted files restored",
            Action::Reconfigured => "reconfigured",
        },
        report
            .previous
            .as_ref()
            .filter(|_| matches!(report.action, Action::Upgraded | Action::Downgraded))
            .map(|p| format!(" from {p}"))
            .unwrap_or_default(),
        report.release.display()
    );
    if !report.values_changed.is_empty() {
        let _ = writeln!(err, "  values set: {}", report.values_changed.join(", "));
    }
    for c in report.preflight.iter().filter(|c| c.status == "skipped") {
        let _ = writeln!(err, "  preflight {} SKIPPED: {}", c.name, c.message);
    }
    for f in &report.repaired {
        let _ = writeln!(err, "  restored {:<9} {}", f.was, f.target);
    }
    for i in &report.images {
        let present = if i.layers_present > 0 {
            format!(", {} layers present", i.layers_present)
        } else {
            String::new()
        };
        let _ = writeln!(
            err,
            "  image {:<8} {} {} ({}{present})",
            i.status, i.name, i.config, i.service
        );
    }
    if !report.secrets_added.is_empty() {
        let _ = writeln!(
            err,
            "  generated secrets in .env: {}",
            report.secrets_added.join(", ")
        );
    }
    for c in &report.services {
        let _ = writeln!(err, "  service {:<20} {} {}", c.service, c.state, c.health);
    }
}

/// The dry run's plan as text on stderr.
fn print_plan(plan: &bale::install::Plan) {
    let mut err = Terminal::stderr();
    let _ = writeln!(
        err,
        "dry run: {} {} would be {}{} (nothing was changed)",
        plan.name,
        plan.version,
        format!("{:?}", plan.action).to_lowercase(),
        plan.current
            .as_ref()
            .map(|c| format!(", over {c}"))
            .unwrap_or_default()
    );
    for i in &plan.images {
        let _ = writeln!(err, "  image {:<8} {} ({})", i.status, i.name, i.service);
    }
    for f in &plan.files {
        let lines = f
            .lines
            .map(|(a, r)| format!(" (+{a} -{r} lines)"))
            .unwrap_or_default();
        let _ = writeln!(err, "  file  {:<8} {}{lines}", f.change, f.target);
    }
    if !plan.values_changed.is_empty() {
        let _ = writeln!(err, "  values to set: {}", plan.values_changed.join(", "));
    }
    if !plan.secrets_to_generate.is_empty() {
        let _ = writeln!(
            err,
            "  secrets to generate: {}",
            plan.secrets_to_generate.join(", ")
        );
    }
    if !plan.jobs.is_empty() {
        let _ = writeln!(err, "  jobs --up runs: {}", plan.jobs.join(", "));
    }
    for c in &plan.preflight {
        let _ = writeln!(
            err,
            "  preflight {:<16} {:<7} {}",
            c.name, c.status, c.message
        );
    }
    for n in &plan.notes {
        let _ = writeln!(err, "  not checked: {n}");
    }
}
