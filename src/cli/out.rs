//! Lines for stdout that never panic. `println!` panics when stdout is a
//! closed pipe (`mediafs status | head -1`, or a service started with its
//! stdout closed); a listing should then stop quietly, and a mount must go
//! on serving whoever reads its lines or not.

use std::fmt::Display;
use std::io::{ErrorKind, Write};

/// Writes one line to stdout. `Ok(false)` when nobody reads it any more
/// (a closed pipe): the caller stops printing.
pub fn line(text: impl Display) -> Result<bool, String> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(format!("cannot write to stdout: {e}")),
    }
}

/// Writes a line a person may read, or not: a mount or an emulator runs on
/// whether its stdout is read, closed or full of errors.
pub fn note(text: impl Display) {
    if let Err(e) = line(text) {
        log::debug!("{e}");
    }
}
