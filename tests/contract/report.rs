//! What a run of the contract suite found, check by check, and the list a
//! user sends back. Every check passes against the emulator on every CI
//! run, so whatever a live run finds is a way the service differs from the
//! emulator: either one that breaks what mediafs relies on, or one that
//! mediafs copes with but the emulator should learn. Except when the run
//! could not test the service at all (a token refused, an address that
//! does not answer, writes asked of a read-only token): that is the setup,
//! and the report says so, and what tells more (`mediafs check`).

use std::fmt::Write as _;
use std::io::Write as _;

/// How much a finding matters to mediafs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Breaks something mediafs relies on: the test fails.
    Broken,
    /// Not what the emulator does, though mediafs copes.
    Differs,
    /// The run's setup kept it from testing something: not the service's
    /// fault, most likely, and not a difference from the emulator.
    Setup,
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub check: String,
    pub severity: Severity,
    pub detail: String,
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Everything held; says what it looked at.
    Passed(String),
    /// It found something (see the findings).
    Found,
    /// The library held nothing this check could look at; says why.
    NothingToLookAt(String),
    /// Not run; says why.
    Skipped(String),
}

/// One check under way: what it looked at and what it found.
#[derive(Debug)]
pub struct Check {
    name: String,
    looked_at: String,
    findings: Vec<(Severity, String)>,
}

impl Check {
    pub fn new(name: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            looked_at: String::new(),
            findings: Vec::new(),
        }
    }

    pub fn looked_at(&mut self, what: impl Into<String>) {
        self.looked_at = what.into();
    }

    pub fn broken(&mut self, detail: impl Into<String>) {
        self.findings.push((Severity::Broken, detail.into()));
    }

    pub fn differs(&mut self, detail: impl Into<String>) {
        self.findings.push((Severity::Differs, detail.into()));
    }

    pub fn setup(&mut self, detail: impl Into<String>) {
        self.findings.push((Severity::Setup, detail.into()));
    }

    pub fn found_anything(&self) -> bool {
        !self.findings.is_empty()
    }
}

#[derive(Debug)]
pub struct Report {
    /// Where the run went, for the report's first line.
    pub target: String,
    /// The `mediafs check` command line that looks at the same setup.
    pub check_command: String,
    /// Never printed: every text is scrubbed of it.
    token: String,
    checks: Vec<(String, Status)>,
    findings: Vec<Finding>,
    notes: Vec<String>,
}

impl Report {
    pub fn new(target: String, check_command: String, token: &str) -> Self {
        Report {
            target,
            check_command,
            token: token.to_owned(),
            checks: Vec::new(),
            findings: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn add(&mut self, check: Check) {
        let status = if check.findings.is_empty() {
            Status::Passed(check.looked_at)
        } else {
            Status::Found
        };
        for (severity, detail) in check.findings {
            self.findings.push(Finding {
                check: check.name.clone(),
                severity,
                detail,
            });
        }
        self.checks.push((check.name, status));
    }

    /// Ends a check that had nothing to look at, keeping what it did find
    /// (an empty answer can still have the wrong shape).
    pub fn nothing_to_look_at(&mut self, check: Check, why: impl Into<String>) {
        if check.found_anything() {
            return self.add(check);
        }
        self.checks
            .push((check.name, Status::NothingToLookAt(why.into())));
    }

    pub fn skipped(&mut self, check: impl Into<String>, why: impl Into<String>) {
        self.checks
            .push((check.into(), Status::Skipped(why.into())));
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    pub fn findings(&self, severity: Severity) -> Vec<&Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .collect()
    }

    /// The names of the checks that ended as `wanted` says.
    pub fn checks_where(&self, wanted: impl Fn(&Status) -> bool) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|(_, s)| wanted(s))
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// The whole report as text, the token scrubbed out.
    pub fn render(&self) -> String {
        let mut out = format!("mediafs contract suite against {}\n", self.target);
        for (name, status) in &self.checks {
            let line = match status {
                Status::Passed(what) if what.is_empty() => format!("  pass  {name}"),
                Status::Passed(what) => format!("  pass  {name} ({what})"),
                Status::Found => format!("  FOUND {name} (see below)"),
                Status::NothingToLookAt(why) => {
                    format!("  none  {name}: nothing to look at ({why})")
                }
                Status::Skipped(why) => format!("  skip  {name}: {why}"),
            };
            let _ = writeln!(out, "{line}");
        }
        for note in &self.notes {
            let _ = writeln!(out, "  note  {note}");
        }
        out.push_str(&self.render_findings());
        self.scrub(out)
    }

    fn render_findings(&self) -> String {
        let mut out = String::new();
        let setup = self.findings(Severity::Setup);
        if !setup.is_empty() {
            let _ = writeln!(
                out,
                "\nThe run could not test everything, because of its setup (these are not \
                 differences from the emulator):"
            );
            for f in &setup {
                let _ = writeln!(out, "  - {}: {}", f.check, f.detail);
            }
            let _ = writeln!(
                out,
                "To see what to fix, run with the same token in MEDIAFS_TOKEN:\n  {}",
                self.check_command
            );
        }
        let differences: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| f.severity != Severity::Setup)
            .collect();
        if differences.is_empty() {
            out.push_str("No differences from the emulator were found.\n");
            return out;
        }
        let n = differences.len();
        let _ = writeln!(
            out,
            "\n{n} {} from the emulator (every check above passes against it):",
            if n == 1 { "difference" } else { "differences" }
        );
        for (i, f) in differences.iter().enumerate() {
            let tag = match f.severity {
                Severity::Broken => "BREAKS MEDIAFS",
                Severity::Differs | Severity::Setup => "differs",
            };
            let _ = writeln!(out, "{:>3}. [{tag}] {}: {}", i + 1, f.check, f.detail);
        }
        out
    }

    fn scrub(&self, text: String) -> String {
        if self.token.is_empty() {
            text
        } else {
            text.replace(&self.token, "<token>")
        }
    }

    /// Writes the report where `cargo test` shows it: libtest captures
    /// `println!` and `eprintln!`, not a write to the real stderr.
    pub fn print(&self) {
        say(&self.render());
    }
}

/// Writes `text` to the real stderr, past libtest's capture.
pub fn say(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// A JSON value for a report, cut to a readable length.
pub fn excerpt(value: &impl std::fmt::Display) -> String {
    const MAX: usize = 1500;
    let text = value.to_string();
    if text.chars().count() <= MAX {
        return text;
    }
    let cut: String = text.chars().take(MAX).collect();
    format!("{cut}… ({} characters in all)", text.chars().count())
}
