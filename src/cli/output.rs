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

/// The one progress bar bale draws, on a terminal's stderr: bytes done of
/// a total, with a message (the image, or the blob being pushed).
pub struct Progress(indicatif::ProgressBar);

impl Progress {
    fn new() -> Progress {
        Progress(
            indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            ),
        )
    }

    /// Sets where it stands.
    pub fn set(&self, done: u64, total: u64) {
        self.0.set_length(total);
        self.0.set_position(done);
    }

    /// Adds to what is done.
    pub fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }

    /// Sets its message.
    pub fn message(&self, m: String) {
        self.0.set_message(m);
    }

    /// Prints a line above the bar.
    pub fn println(&self, line: &str) {
        self.0.println(for_terminal(line));
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// The fetch reporter that drives a [`Progress`].
struct Bars {
    bar: Progress,
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
            } => self.bar.set(present_bytes, bytes),
            Event::Progress { bytes, .. } => self.bar.advance(bytes),
            Event::Finished { image, .. } => self.bar.message(image),
            Event::Started { .. } => {}
        }
    }

    fn finish(&self) {
        self.bar.finish();
    }
}

/// How a command prints JSON, if it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Json {
    /// Text on stderr.
    Off,
    /// One JSON document on stdout at the end.
    Document,
    /// A JSON line per event on stdout, closed by a summary line.
    Lines,
}

/// A command's output mode, resolved once from its flags and the
/// terminal: JSON or text, and whether progress is drawn.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    /// JSON, and of which shape.
    pub json: Json,
    /// Whether stderr is a terminal (progress bars, "resolving" lines).
    pub terminal: bool,
    /// Whether stdin is a terminal (prompts for passwords and values).
    pub interactive: bool,
}

impl Output {
    /// The mode for `json`, on this process's terminal.
    pub fn new(json: Json) -> Output {
        Output {
            json,
            terminal: std::io::stderr().is_terminal(),
            interactive: std::io::stdin().is_terminal(),
        }
    }

    /// Whether JSON is printed.
    pub fn is_json(&self) -> bool {
        self.json != Json::Off
    }

    /// Prints `value` as the command's closing JSON result, with `ok` set
    /// (and, after events, `"event": "summary"`).
    pub fn result(&self, value: &impl serde::Serialize, ok: bool) {
        let mut v = serde_json::to_value(value).unwrap_or_default();
        match self.json {
            Json::Lines => {
                v["event"] = "summary".into();
                result_line(v, ok);
            }
            _ => result(v, ok),
        }
    }

    /// Prints one event as a JSON line.
    pub fn event(&self, value: &impl serde::Serialize) {
        if let Ok(line) = serde_json::to_string(value) {
            jsonln!("{line}");
        }
    }

    /// On a failure under `--json`: the closing object, unless the
    /// command printed its own.
    pub fn failure(&self, error: &bale::Error) {
        match self.json {
            Json::Off => {}
            Json::Document => failure(error, None),
            Json::Lines => failure(error, Some("summary")),
        }
    }

    /// The fetch reporter: JSON lines when events are printed, nothing
    /// under a JSON document, bars on a terminal, plain lines otherwise.
    pub fn reporter(&self) -> Box<dyn Reporter> {
        match self.json {
            Json::Lines => Box::new(JsonLines),
            Json::Document => Box::new(Silent),
            Json::Off if self.terminal => Box::new(Bars {
                bar: Progress::new(),
                state: Mutex::new(()),
            }),
            Json::Off => Box::new(Lines),
        }
    }

    /// A progress bar, where text goes to a terminal.
    pub fn progress(&self) -> Option<Progress> {
        (self.json == Json::Off && self.terminal).then(Progress::new)
    }

    /// A line of text on stderr, above `bar` when there is one.
    pub fn line(&self, bar: Option<&Progress>, line: &str) {
        match bar {
            Some(b) => b.println(line),
            None => errln!("{line}"),
        }
    }
}
