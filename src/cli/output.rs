//! What the CLI prints: sizes for people, progress on stderr, and JSON
//! results on stdout whose last object always says `ok`.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bale::fetch::{Event, Reporter, Silent};

/// Whether a command already printed its JSON result object (which then
/// carries `ok: false` itself, and must not be followed by another).
static RESULT_PRINTED: AtomicBool = AtomicBool::new(false);

/// Prints `value` with `ok` set as a command's JSON result.
pub fn result(mut value: serde_json::Value, ok: bool) {
    if let Some(map) = value.as_object_mut() {
        map.insert("ok".into(), ok.into());
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    );
    RESULT_PRINTED.store(true, Ordering::SeqCst);
}

/// Prints `value` with `ok` set as one JSON line (for `--json` event streams).
pub fn result_line(mut value: serde_json::Value, ok: bool) {
    if let Some(map) = value.as_object_mut() {
        map.insert("ok".into(), ok.into());
    }
    println!("{value}");
    RESULT_PRINTED.store(true, Ordering::SeqCst);
}

/// On a failure under `--json`: the closing object, unless the command
/// printed its own. `event` is set for the commands that stream events.
pub fn failure(error: &bale::Error, event: Option<&str>) {
    if RESULT_PRINTED.load(Ordering::SeqCst) {
        return;
    }
    let mut v = serde_json::json!({
        "error": error.to_string(),
        "exit_code": error.exit_code(),
    });
    if let Some(e) = event {
        v["event"] = e.into();
    }
    result_line(v, false);
}

/// A size for people.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The fetch reporter for this output: JSON lines, bars on a terminal,
/// plain lines otherwise.
pub fn reporter(json: bool, silent: bool) -> Box<dyn Reporter> {
    if json && !silent {
        Box::new(JsonLines)
    } else if json {
        Box::new(Silent)
    } else if std::io::stderr().is_terminal() {
        Box::new(Bars {
            total: indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            ),
            state: Mutex::new(()),
        })
    } else {
        Box::new(Lines)
    }
}

/// Which image is being resolved, on a terminal only: resolution can wait
/// on a slow registry, and silence there looks like a hang.
pub fn resolving(service: &str, image: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("resolving {service} ({image})…");
    }
}

/// Plain lines on stderr, one per finished blob.
struct Lines;

impl Reporter for Lines {
    fn event(&self, event: Event) {
        let mut err = std::io::stderr().lock();
        let _ = match event {
            Event::Planned {
                blobs,
                bytes,
                present,
                ..
            } => writeln!(
                err,
                "fetch: {blobs} blobs, {}; {present} already in the store",
                human(bytes)
            ),
            Event::Finished {
                digest,
                size,
                image,
                ..
            } => {
                writeln!(err, "fetched {digest} ({}) for {image}", human(size))
            }
            _ => Ok(()),
        };
    }
}

/// JSON lines on stdout.
struct JsonLines;

impl Reporter for JsonLines {
    fn event(&self, event: Event) {
        if matches!(event, Event::Progress { .. }) {
            return;
        }
        if let Ok(line) = serde_json::to_string(&event) {
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
    }
}

/// Progress bars on a terminal.
struct Bars {
    total: indicatif::ProgressBar,
    state: Mutex<()>,
}

impl Reporter for Bars {
    fn event(&self, event: Event) {
        let _guard = self.state.lock();
        match event {
            Event::Planned {
                bytes,
                present_bytes,
                ..
            } => {
                self.total.set_length(bytes);
                self.total.set_position(present_bytes);
            }
            Event::Progress { bytes, .. } => self.total.inc(bytes),
            Event::Finished { image, .. } => self.total.set_message(image),
            Event::Started { .. } => {}
        }
    }

    fn finish(&self) {
        self.total.finish_and_clear();
    }
}
