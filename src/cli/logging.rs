//! Where the log goes and how much of it: `--log-file` (appended to, the only
//! place a daemon's log can go), `--log-level` (or `RUST_LOG` when it is not
//! given), and plain lines for the journal when systemd reads standard error,
//! which stamps each line itself and reads its priority from a `<N>` prefix.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use log::LevelFilter;

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Append the log to this file instead of standard error (where a mount
    /// with --daemon logs, as it has no standard error).
    #[arg(long, global = true, value_name = "FILE", value_parser = super::absolute_path)]
    log_file: Option<PathBuf>,
    /// How much mediafs logs [default: info]. It wins over RUST_LOG, which
    /// sets the filter only when --log-level is not given.
    #[arg(long, global = true, value_enum, value_name = "LEVEL")]
    log_level: Option<Level>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<Level> for LevelFilter {
    fn from(level: Level) -> LevelFilter {
        match level {
            Level::Error => LevelFilter::Error,
            Level::Warn => LevelFilter::Warn,
            Level::Info => LevelFilter::Info,
            Level::Debug => LevelFilter::Debug,
            Level::Trace => LevelFilter::Trace,
        }
    }
}

impl LogArgs {
    /// Opens the log file for appending (0600, as it names files), if one is given.
    pub fn open_file(&self) -> Result<Option<File>, String> {
        let Some(path) = &self.log_file else {
            return Ok(None);
        };
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map(Some)
            .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))
    }

    /// The filter: --log-level sets mediafs's level and lets other crates
    /// say no more than warnings; otherwise RUST_LOG, or info.
    fn filter(&self) -> String {
        match self.log_level {
            Some(level) => {
                let level = LevelFilter::from(level);
                let others = level.min(LevelFilter::Warn);
                format!("{others},fuser=error,mediafs={level}").to_lowercase()
            }
            None => std::env::var("RUST_LOG").unwrap_or_else(|_| "info,fuser=error".into()),
        }
    }
}

/// Where the log goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTo {
    File,
    Journal,
    StandardError,
}

/// Starts the logger: into `file` when given, otherwise to standard error,
/// formatted for the journal when that is where standard error goes.
pub fn init(args: &LogArgs, file: Option<File>) -> LogTo {
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(&args.filter());
    let to = match (&file, stderr_is_journal()) {
        (Some(_), _) => LogTo::File,
        (None, true) => LogTo::Journal,
        (None, false) => LogTo::StandardError,
    };
    match file {
        Some(file) => {
            builder
                .format_timestamp_millis()
                .target(env_logger::Target::Pipe(Box::new(file)));
        }
        None if stderr_is_journal() => {
            builder.format(|buf, record| {
                writeln!(
                    buf,
                    "<{}>{}: {}",
                    syslog_priority(record.level()),
                    record.target(),
                    record.args()
                )
            });
        }
        None => {
            builder.format_timestamp_millis();
        }
    }
    builder.init();
    to
}

/// Whether standard error is the stream systemd connected to the journal
/// (JOURNAL_STREAM names its device and inode), not one a child redirected.
fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stderr) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    stream == format!("{}:{}", stderr.dev(), stderr.ino())
}

fn syslog_priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_level_sets_mediafs_and_caps_other_crates_at_warnings() {
        let args = |log_level| LogArgs {
            log_file: None,
            log_level,
        };
        assert_eq!(
            args(Some(Level::Debug)).filter(),
            "warn,fuser=error,mediafs=debug"
        );
        assert_eq!(
            args(Some(Level::Error)).filter(),
            "error,fuser=error,mediafs=error"
        );
    }
}
