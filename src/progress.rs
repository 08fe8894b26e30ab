//! Progress for people, on stderr, through one reporter whose style is decided once from the
//! execution context:
//! - a terminal outside CI: one indicatif line per location (`step 3/7: RUN ...`, bytes pushed);
//! - GitHub Actions / GitLab CI: a live `[location] step` line per step, and each location's
//!   whole log in one collapsible group (`::group::` / `section_start`) when it finishes, so
//!   parallel builds never interleave inside a group;
//! - anything else: plain `[location] line` lines as they come.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::build::{BuildReporter, LocationReporter, ProgressEvent, human_size};
use crate::ci::context::{CiContext, CiProvider};
use crate::pex::PexReporter;

/// Lines of one location's log kept for its CI group (the oldest are dropped beyond this).
const GROUP_LINES: usize = 5000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bars,
    Plain,
    Github,
    Gitlab,
    /// Nothing at all (library callers, tests).
    Quiet,
}

impl Mode {
    /// The style for this context: CI first (its logs are not terminals even when they claim
    /// to be), then whether stderr is a terminal.
    pub fn decide(ci: &CiContext, stderr_is_terminal: bool, term: Option<&str>) -> Mode {
        match ci.provider {
            Some(CiProvider::Github) => Mode::Github,
            Some(CiProvider::Gitlab) => Mode::Gitlab,
            Some(_) => Mode::Plain,
            None if stderr_is_terminal && term != Some("dumb") => Mode::Bars,
            None => Mode::Plain,
        }
    }

    /// [`Mode::decide`] for this process.
    pub fn detect(ci: &CiContext) -> Mode {
        let term = std::env::var("TERM").ok();
        Mode::decide(ci, std::io::stderr().is_terminal(), term.as_deref())
    }
}

type Sink = Arc<Mutex<Box<dyn Write + Send>>>;

/// The one progress reporter of a command.
#[derive(Clone)]
pub struct Reporter {
    mode: Mode,
    multi: Option<MultiProgress>,
    sink: Sink,
}

impl Reporter {
    /// Reports on stderr.
    pub fn new(mode: Mode) -> Reporter {
        Reporter::to_writer(mode, Box::new(std::io::stderr()))
    }

    /// Reports into `writer` (bars are drawn on stderr whatever the writer).
    pub fn to_writer(mode: Mode, writer: Box<dyn Write + Send>) -> Reporter {
        let multi = (mode == Mode::Bars)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Reporter {
            mode,
            multi,
            sink: Arc::new(Mutex::new(writer)),
        }
    }

    pub fn quiet() -> Reporter {
        Reporter::to_writer(Mode::Quiet, Box::new(std::io::sink()))
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A line for people, outside any location.
    pub fn message(&self, text: &str) {
        match (&self.multi, self.mode) {
            (_, Mode::Quiet) => {}
            (Some(multi), _) => {
                let _ = multi.println(text);
            }
            (None, _) => self.write(&format!("{text}\n")),
        }
    }

    /// Starts reporting one location.
    pub fn location(&self, name: &str) -> LocationProgress {
        let bar = self.multi.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::new_spinner());
            let style = ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.set_prefix(name.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        LocationProgress {
            reporter: self.clone(),
            name: name.to_string(),
            bar,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    fn write(&self, text: &str) {
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        let _ = sink.write_all(text.as_bytes());
        let _ = sink.flush();
    }
}

/// PEX progress is one line per step; warnings go out as every warning does.
impl PexReporter for Reporter {
    fn progress(&self, line: &str) {
        self.message(line);
    }

    fn warn(&self, location: &str, text: &str) {
        crate::printer::warn(&format!("{location}: {text}"));
    }
}

impl BuildReporter for Reporter {
    fn location(&self, name: &str) -> Box<dyn LocationReporter> {
        Box::new(Reporter::location(self, name))
    }
}

impl LocationReporter for LocationProgress {
    fn step(&self, text: &str) {
        LocationProgress::step(self, text)
    }

    fn event(&self, event: ProgressEvent<'_>) {
        LocationProgress::event(self, event)
    }

    fn finish(&self, ok: bool, summary: &str, details: &[String]) {
        LocationProgress::finish(self, ok, summary, details)
    }
}

#[derive(Default)]
struct State {
    step: String,
    /// Bytes moved per layer (keyed by id and size).
    transfers: HashMap<(String, u64), u64>,
    /// The location's log, for its CI group.
    log: std::collections::VecDeque<String>,
    dropped: usize,
}

/// Progress of one location; cheap to share between its tasks.
#[derive(Clone)]
pub struct LocationProgress {
    reporter: Reporter,
    name: String,
    bar: Option<ProgressBar>,
    state: Arc<Mutex<State>>,
}

impl LocationProgress {
    /// A new step (`checking registry`, `building`, `pushing <tag>`).
    pub fn step(&self, text: &str) {
        {
            let mut state = self.state();
            state.step = text.to_string();
            state.transfers.clear();
        }
        match self.reporter.mode {
            Mode::Quiet => {}
            Mode::Bars => self.set_message(text),
            Mode::Plain | Mode::Github | Mode::Gitlab => {
                self.reporter.write(&format!("[{}] {text}\n", self.name));
            }
        }
        self.keep(text);
    }

    /// Output from the engine.
    pub fn event(&self, event: ProgressEvent<'_>) {
        match event {
            ProgressEvent::Line(line) => self.line(line),
            ProgressEvent::Transfer {
                layer,
                current,
                total,
            } => {
                if self.reporter.mode != Mode::Bars {
                    return;
                }
                let message = {
                    let mut state = self.state();
                    // The engine may count a layer's compressed bytes past its size.
                    state
                        .transfers
                        .insert((layer.to_string(), total), current.min(total));
                    let done: u64 = state.transfers.values().sum();
                    let all: u64 = state.transfers.keys().map(|(_, t)| t).sum();
                    format!("{}: {} / {}", state.step, human_size(done), human_size(all))
                };
                self.set_message(&message);
            }
        }
    }

    fn line(&self, line: &str) {
        match self.reporter.mode {
            Mode::Quiet => {}
            Mode::Bars => {
                // `Step 3/7 : RUN ...` from the builder becomes the line's message.
                if let Some(rest) = line.strip_prefix("Step ") {
                    self.set_message(&format!("step {}", rest.replacen(" : ", ": ", 1)));
                }
            }
            _ if is_noise(line) => {}
            Mode::Plain => self.reporter.write(&format!("[{}] {line}\n", self.name)),
            Mode::Github | Mode::Gitlab => self.keep(line),
        }
    }

    /// The location is done: `summary` is one line (`built localhost:5000/x:tag in 3.2 s`),
    /// `details` are shown below it (a failure's step, message and log tail).
    pub fn finish(&self, ok: bool, summary: &str, details: &[String]) {
        let mark = if ok { "ok" } else { "FAILED" };
        match self.reporter.mode {
            Mode::Quiet => {}
            Mode::Bars => {
                if let Some(bar) = &self.bar {
                    bar.finish_with_message(format!("{mark}: {summary}"));
                }
                for line in details {
                    self.reporter.message(&format!("[{}] {line}", self.name));
                }
            }
            Mode::Plain => {
                let mut text = format!("[{}] {mark}: {summary}\n", self.name);
                for line in details {
                    text.push_str(&format!("[{}] {line}\n", self.name));
                }
                self.reporter.write(&text);
            }
            Mode::Github | Mode::Gitlab => self.write_group(ok, summary, details),
        }
    }

    fn write_group(&self, ok: bool, summary: &str, details: &[String]) {
        let state = self.state();
        let header = format!("{}: {summary}", self.name);
        let mut text = String::new();
        let section = section_name(&self.name);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match self.reporter.mode {
            Mode::Github => text.push_str(&format!("::group::{header}\n")),
            _ => text.push_str(&format!(
                "\x1b[0Ksection_start:{now}:{section}[collapsed=true]\r\x1b[0K{header}\n"
            )),
        }
        if state.dropped > 0 {
            text.push_str(&format!("... {} earlier lines not shown\n", state.dropped));
        }
        for line in &state.log {
            text.push_str(line);
            text.push('\n');
        }
        match self.reporter.mode {
            Mode::Github => text.push_str("::endgroup::\n"),
            _ => text.push_str(&format!("\x1b[0Ksection_end:{now}:{section}\r\x1b[0K\n")),
        }
        // Outside the group, so a failure is visible without unfolding anything.
        let mark = if ok { "ok" } else { "FAILED" };
        text.push_str(&format!("[{}] {mark}: {summary}\n", self.name));
        for line in details {
            if !ok && self.reporter.mode == Mode::Github && line == &details[0] {
                text.push_str(&format!("::error title={}::{line}\n", self.name));
            } else {
                text.push_str(&format!("[{}] {line}\n", self.name));
            }
        }
        drop(state);
        self.reporter.write(&text);
    }

    fn keep(&self, line: &str) {
        if !matches!(self.reporter.mode, Mode::Github | Mode::Gitlab) {
            return;
        }
        let mut state = self.state();
        if state.log.len() == GROUP_LINES {
            state.log.pop_front();
            state.dropped += 1;
        }
        state.log.push_back(line.to_string());
    }

    fn set_message(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(text.to_string());
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Per-layer push states that repeat for every layer and say nothing in a log.
fn is_noise(line: &str) -> bool {
    matches!(
        line.trim(),
        "Preparing" | "Waiting" | "Pushing" | "Downloading" | "Extracting"
    )
}

/// GitLab section names allow letters, digits, `_`, `.` and `-`.
fn section_name(location: &str) -> String {
    let clean: String = location
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("build_{clean}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn run(mode: Mode) -> String {
        let buffer = Buffer::default();
        let reporter = Reporter::to_writer(mode, Box::new(buffer.clone()));
        let a = reporter.location("a");
        let b = reporter.location("b");
        a.step("building");
        b.step("building");
        a.event(ProgressEvent::Line("Step 1/2 : FROM base"));
        b.event(ProgressEvent::Line("Step 1/1 : FROM base"));
        a.event(ProgressEvent::Transfer {
            layer: "x",
            current: 1,
            total: 2,
        });
        b.finish(true, "built r:b-ck in 1.0 s", &[]);
        a.finish(
            false,
            "failed at build",
            &["boom".into(), "last line".into()],
        );
        buffer.text()
    }

    #[test]
    fn the_style_follows_the_context() {
        let ci = |p| CiContext {
            provider: Some(p),
            base: Ok(None),
        };
        assert_eq!(
            Mode::decide(&ci(CiProvider::Github), true, None),
            Mode::Github
        );
        assert_eq!(
            Mode::decide(&ci(CiProvider::Gitlab), false, None),
            Mode::Gitlab
        );
        assert_eq!(
            Mode::decide(&ci(CiProvider::Jenkins), true, None),
            Mode::Plain
        );
        assert_eq!(Mode::decide(&CiContext::none(), true, None), Mode::Bars);
        assert_eq!(
            Mode::decide(&CiContext::none(), true, Some("dumb")),
            Mode::Plain
        );
        assert_eq!(Mode::decide(&CiContext::none(), false, None), Mode::Plain);
    }

    #[test]
    fn plain_lines_are_prefixed_as_they_come() {
        assert_eq!(
            run(Mode::Plain),
            "[a] building\n[b] building\n[a] Step 1/2 : FROM base\n[b] Step 1/1 : FROM base\n\
             [b] ok: built r:b-ck in 1.0 s\n[a] FAILED: failed at build\n[a] boom\n[a] last line\n"
        );
    }

    #[test]
    fn github_groups_hold_each_location_whole() {
        assert_eq!(
            run(Mode::Github),
            "[a] building\n[b] building\n\
             ::group::b: built r:b-ck in 1.0 s\nbuilding\nStep 1/1 : FROM base\n::endgroup::\n\
             [b] ok: built r:b-ck in 1.0 s\n\
             ::group::a: failed at build\nbuilding\nStep 1/2 : FROM base\n::endgroup::\n\
             [a] FAILED: failed at build\n::error title=a::boom\n[a] last line\n"
        );
    }

    #[test]
    fn gitlab_sections_are_named_and_collapsed() {
        let text = run(Mode::Gitlab);
        assert!(
            text.contains(":build_b[collapsed=true]\r\x1b[0Kb: built r:b-ck in 1.0 s\nbuilding\n"),
            "{text:?}"
        );
        assert!(text.contains("section_end:"), "{text:?}");
        assert_eq!(section_name("my loc"), "build_my_loc");
    }

    #[test]
    fn quiet_says_nothing() {
        assert_eq!(run(Mode::Quiet), "");
    }
}
