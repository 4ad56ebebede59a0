//! What the CLI prints: sizes for people, progress on stderr, and JSON
//! results on stdout whose last object always says `ok`.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bale::fetch::{Event, Reporter, Silent};

/// Where text goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

/// `s` made safe for a terminal: every control character but a line break
/// and a tab (ESC, CR, BEL, the C1 set, ...) and the bidirectional
/// overrides escaped as `\u{..}`, so that a name from a bundle, a host or a
/// registry cannot move the cursor, rewrite a line or reorder one.
pub fn for_terminal(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    if !s.contains(bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Writes `text` to `to`, escaped for a terminal unless `raw` (JSON, whose
/// strings carry no raw control character). A closed pipe (`bale … |
/// head -1`) ends bale quietly, as ripgrep does.
pub fn emit(to: Stream, text: &str, raw: bool) {
    let text = if raw {
        std::borrow::Cow::Borrowed(text)
    } else {
        for_terminal(text)
    };
    let written = match to {
        Stream::Out => std::io::stdout().lock().write_all(text.as_bytes()),
        Stream::Err => std::io::stderr().lock().write_all(text.as_bytes()),
    };
    if let Err(e) = written
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// A report written piece by piece (`writeln!`) and printed, escaped for
/// a terminal, when it is dropped.
pub struct Terminal {
    buf: Vec<u8>,
    to: Stream,
}

impl Terminal {
    /// A report for standard output.
    pub fn stdout() -> Terminal {
        Terminal {
            buf: Vec::new(),
            to: Stream::Out,
        }
    }

    /// A report for standard error.
    pub fn stderr() -> Terminal {
        Terminal {
            buf: Vec::new(),
            to: Stream::Err,
        }
    }
}

impl Write for Terminal {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let text = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        emit(self.to, &text, false);
        Ok(())
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Whether a command already printed its JSON result object (which then
/// carries `ok: false` itself, and must not be followed by another).
static RESULT_PRINTED: AtomicBool = AtomicBool::new(false);

/// Prints `value` with `ok` set as a command's JSON result.
pub fn result(mut value: serde_json::Value, ok: bool) {
    if let Some(map) = value.as_object_mut() {
        map.insert("ok".into(), ok.into());
    }
    jsonln!(
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
    jsonln!("{value}");
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
        errln!("resolving {service} ({image})…");
    }
}

/// Plain lines on stderr, one per finished blob.
struct Lines;

impl Reporter for Lines {
    fn event(&self, event: Event) {
        let mut err = Terminal::stderr();
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
            jsonln!("{line}");
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
