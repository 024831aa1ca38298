//! The report `mediafs check` prints: one line per check, in a fixed order,
//! each with its verdict and what to do; a check an earlier failure kept
//! from running says so rather than going missing.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// What a check found, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    /// Worth knowing, nothing to fix.
    Note,
    /// Not tried, or nothing to try it on.
    Skipped,
    /// A mount will work, but not as well as it could: the line says how to fix it.
    Warning,
    /// A mount would fail (or fail to change anything, unless read-only).
    Failed,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Verdict::Ok => "ok",
            Verdict::Note => "note",
            Verdict::Skipped => "skipped",
            Verdict::Warning => "warning",
            Verdict::Failed => "failed",
        })
    }
}

/// The checks, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Item {
    Token,
    Service,
    Location,
    Read,
    Write,
    RateLimit,
    FileUrls,
    RoundTrip,
}

impl Item {
    const ALL: [Item; 8] = [
        Item::Token,
        Item::Service,
        Item::Location,
        Item::Read,
        Item::Write,
        Item::RateLimit,
        Item::FileUrls,
        Item::RoundTrip,
    ];

    fn label(self) -> &'static str {
        match self {
            Item::Token => "token",
            Item::Service => "service",
            Item::Location => "location",
            Item::Read => "read access",
            Item::Write => "write access",
            Item::RateLimit => "rate limit",
            Item::FileUrls => "file URLs",
            Item::RoundTrip => "round trip",
        }
    }
}

#[derive(Debug, Default)]
pub struct Report {
    lines: BTreeMap<Item, (Verdict, String)>,
}

impl Report {
    /// Records what a check found; a check is decided once.
    pub fn set(&mut self, item: Item, verdict: Verdict, says: impl Into<String>) {
        self.lines.entry(item).or_insert((verdict, says.into()));
    }

    pub fn worst(&self) -> Verdict {
        self.lines
            .values()
            .map(|(v, _)| *v)
            .max()
            .unwrap_or(Verdict::Ok)
    }

    pub fn count(&self, verdict: Verdict) -> usize {
        self.lines.values().filter(|(v, _)| *v == verdict).count()
    }

    /// The report's lines, every check included.
    pub fn lines(&self) -> Vec<String> {
        Item::ALL
            .iter()
            .map(|item| {
                let (verdict, says) = self.lines.get(item).cloned().unwrap_or((
                    Verdict::Skipped,
                    "not tried: an earlier check failed".to_owned(),
                ));
                format!("  {verdict:<8} {:<13} {says}", item.label())
            })
            .collect()
    }
}

/// "Made 3 API calls, 1 download and 1 token refresh in all".
pub fn tally(api_calls: u32, downloads: u32, refreshes: u64) -> String {
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = vec![
        plural(api_calls.into(), "API call", "API calls"),
        plural(downloads.into(), "download", "downloads"),
    ];
    if refreshes > 0 {
        parts.push(plural(refreshes, "token refresh", "token refreshes"));
    }
    let last = parts.pop().expect("two parts at least");
    format!("Made {} and {last} in all", parts.join(", "))
}

/// A duration as a person reads it: "0.4 ms", "12 ms", "1.3 s", "10 s".
pub fn spoken(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_times_in_words() {
        assert_eq!(tally(1, 0, 0), "Made 1 API call and 0 downloads in all");
        assert_eq!(
            tally(4, 1, 1),
            "Made 4 API calls, 1 download and 1 token refresh in all"
        );
        assert_eq!(spoken(Duration::from_micros(420)), "0.4 ms");
        assert_eq!(spoken(Duration::from_millis(1340)), "1.3 s");
        assert_eq!(spoken(Duration::from_secs(10)), "10 s");
    }

    #[test]
    fn every_check_has_a_line_and_the_first_verdict_stays() {
        let mut report = Report::default();
        report.set(Item::Read, Verdict::Failed, "no read scope");
        report.set(Item::Read, Verdict::Ok, "later");
        report.set(Item::Token, Verdict::Warning, "odd token");
        let lines = report.lines();
        assert_eq!(lines.len(), Item::ALL.len());
        assert!(lines[0].contains("warning") && lines[0].contains("odd token"));
        assert!(lines[3].contains("failed") && lines[3].contains("no read scope"));
        assert!(lines[7].contains("skipped"), "{}", lines[7]);
        assert_eq!(report.worst(), Verdict::Failed);
    }
}
