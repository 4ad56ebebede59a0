//! The operator's and auditor's commands on a host: install and audit.

use std::io::{IsTerminal as _, Write};
use std::path::{Path, PathBuf};

use bale::install::{Action, InstallOptions, current_release};
use bale::runtime::Runtime;
use bale::sign::VerifyingKey;

use super::args::{InstallArgs, RuntimeArgs};
use super::output;

/// A runtime, with the containerd address and namespace to record.
type Chosen = (Box<dyn Runtime>, Option<PathBuf>, Option<String>);

/// The runtime named on the command line, else the one `recorded` by the
/// installed release, else Docker; with its address, namespace and
/// registry likewise.
fn runtime(
    args: &RuntimeArgs,
    recorded: Option<&bale::install::Release>,
) -> Result<Chosen, bale::Error> {
    let name = args
        .runtime
        .clone()
        .or_else(|| recorded.map(|r| r.runtime.clone()))
        .unwrap_or_else(|| "docker".into());
    let from_record = args.runtime.is_none();
    let address = args.containerd_address.clone().or_else(|| {
        recorded
            .filter(|_| from_record)
            .and_then(|r| r.runtime_address.clone())
    });
    let namespace = args.namespace.clone().or_else(|| {
        recorded
            .filter(|_| from_record)
            .and_then(|r| r.runtime_namespace.clone())
    });
    let registry = args.registry.clone().or_else(|| {
        recorded
            .filter(|_| from_record)
            .and_then(|r| r.runtime_registry.clone())
    });
    let client = registry
        .as_ref()
        .map(|_| {
            bale::push::client_with_ca(
                bale::config::Settings::default(),
                args.registry_ca.as_deref(),
            )
        })
        .transpose()?;
    if name == "swarm" && registry.is_none() {
        return Err(bale::Error::Usage(
            "--runtime swarm needs --registry HOST[/PREFIX]: the registry every node pulls the images from (`bale push` or `bale serve` puts them there)".into(),
        ));
    }
    let rt = bale::runtime::by_name(
        &name,
        address.as_deref(),
        namespace.as_deref().unwrap_or("default"),
        registry.as_deref().zip(client),
    )
    .unwrap_or_else(|| Box::new(bale::runtime::NoRuntime));
    let namespace = (name == "containerd").then(|| namespace.unwrap_or_else(|| "default".into()));
    Ok((rt, address, namespace))
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

/// `bale install`.
pub fn install(a: InstallArgs) -> Result<(), bale::Error> {
    let key = VerifyingKey::from_file(&a.public_key)?;
    // Like audit, install defaults to the runtime the installed release
    // recorded: re-installing (the runbook's repair) works as written on a
    // Podman or `--runtime none` host.
    let recorded = current_release(&a.target).ok().flatten().map(|(_, r)| r);
    let (rt, runtime_address, runtime_namespace) = runtime(&a.runtime, recorded.as_ref())?;
    let opts = InstallOptions {
        key: &key,
        target: a.target,
        runtime: rt.as_ref(),
        runtime_address,
        runtime_namespace,
        up: a.up,
        allow_downgrade: a.allow_downgrade,
        timeout: std::time::Duration::from_secs(a.timeout),
        values: bale::install::Supplied {
            set: a.set,
            file: a.values,
        },
        prompt: std::io::stdin()
            .is_terminal()
            .then_some(&prompt as bale::install::Prompt<'_>),
        skip_preflight: a.skip_preflight,
        base: a.base.clone(),
    };
    if a.dry_run {
        let bundle = bale::install::OpenBundle::open_with_base(&a.bundle, &key, a.base.as_deref())?;
        let plan = bale::install::plan(&bundle, &opts)?;
        print_plan(&plan, a.json.json);
        return Ok(());
    }
    let report = bale::install::install(&a.bundle, &opts)?;
    if a.json.json {
        output::result(serde_json::to_value(&report).unwrap_or_default(), true);
        return Ok(());
    }
    let mut err = super::output::Terminal::stderr();
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
    Ok(())
}

fn print_plan(plan: &bale::install::Plan, json: bool) {
    if json {
        output::result(serde_json::to_value(plan).unwrap_or_default(), true);
        return;
    }
    let mut err = super::output::Terminal::stderr();
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

/// `bale audit`.
pub fn audit(
    bundle: Option<&Path>,
    target: &Path,
    public_key: Option<&Path>,
    report_path: Option<&Path>,
    runtime_args: &RuntimeArgs,
    json: bool,
) -> Result<(), bale::Error> {
    use bale::audit::report::{self, Format};
    let format = report_path
        .map(|p| {
            Format::of(p).ok_or_else(|| {
                bale::Error::Usage(format!(
                    "--report {}: the file must end in .html or .md",
                    p.display()
                ))
            })
        })
        .transpose()?;
    let key = match (bundle, public_key) {
        (Some(_), Some(k)) => Some(VerifyingKey::from_file(k)?),
        (Some(_), None) => {
            return Err(bale::sign::SignError::BadKey {
                what: "--public-key".into(),
                kind: "public",
                reason:
                    "required to audit against a bundle: give the key the bundle is signed with"
                        .into(),
            }
            .into());
        }
        _ => None,
    };
    let recorded = current_release(target).ok().flatten().map(|(_, r)| r);
    let (rt, _, _) = runtime(runtime_args, recorded.as_ref())?;
    let against = bundle.zip(key.as_ref());
    let report = bale::audit::audit(target, rt.as_ref(), against)?;
    if let (Some(path), Some(format)) = (report_path, format) {
        bale::store::write_atomic(path, report::render(&report, format).as_bytes())?;
    }
    if json {
        output::result(
            serde_json::to_value(&report).unwrap_or_default(),
            report.ok(),
        );
    } else {
        for f in &report.findings {
            errln!("FINDING {} {}: {}", f.kind, f.subject, f.message);
        }
        let checked = report
            .images
            .iter()
            .filter(|i| i.status != "skipped")
            .count();
        let skipped = report.images.len() - checked;
        errln!(
            "{} {} (manifest {}) in {}: {checked} images{}, {} services, {} files checked against the {} (runtime {}); {} finding(s)",
            report.name,
            report.version,
            report.manifest_digest,
            report.target.display(),
            if skipped > 0 {
                format!(
                    " ({skipped} skipped: runtime {} keeps no images)",
                    report.runtime
                )
            } else {
                String::new()
            },
            report.services.len(),
            report.files.len(),
            report.reference,
            report.runtime,
            report.findings.len()
        );
    }
    if report.ok() {
        Ok(())
    } else {
        Err(bale::Error::Findings(report.findings.len()))
    }
}
