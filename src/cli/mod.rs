//! The command line: `mediafs mount`, `mediafs unmount`, `mediafs demo`,
//! `mediafs status` and `mediafs emulator`.

mod emulator;
mod mount;
mod mounts;
mod out;
mod shutdown;
mod unmount;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "mediafs",
    version,
    about = "Mount a HighLevel location's media library as a directory"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an emulator of the HighLevel Media Storage API (for demos, tests and benchmarks).
    Emulator(emulator::EmulatorArgs),
    /// Mount a location's media library on a directory, in the foreground.
    Mount(mount::MountArgs),
    /// Stop a mount: wait for its uploads, unmount it, and say what was stored or left.
    Unmount(unmount::UnmountArgs),
    /// Start the emulator with a demo library and mount it: try mediafs with no account.
    Demo(mount::DemoArgs),
    /// List the write-back uploads still pending or failed.
    Status(mount::StatusArgs),
}

/// Parses the command line, runs the command, and turns its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info,fuser=error"))
        .format_timestamp_millis()
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mediafs: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let done = |()| ExitCode::SUCCESS;
    let result = match cli.command {
        Command::Emulator(args) => runtime.block_on(emulator::run(args)).map(done),
        Command::Mount(args) => runtime.block_on(mount::run_mount(args)),
        Command::Unmount(args) => unmount::run_unmount(args),
        Command::Demo(args) => runtime.block_on(mount::run_demo(args)),
        Command::Status(args) => mount::run_status(args).map(done),
    };
    // A mount stopped at once leaves work behind on purpose: exit without it.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(code) => code,
        Err(message) => {
            log::error!("{message}");
            eprintln!("mediafs: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub(crate) async fn stop_requested() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("can listen for SIGTERM");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
