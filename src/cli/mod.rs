//! The command line: `mediafs mount`, `mediafs unmount`, `mediafs demo`,
//! `mediafs status`, `mediafs check` and `mediafs emulator`; the same binary is the mount
//! helper `mount.fuse.mediafs` when called by that name.

mod agency;
mod check;
mod emulator;
mod generate;
mod helper;
mod logging;
mod mount;
mod mounts;
mod out;
mod profiles;
mod service;
mod shutdown;
mod unmount;

use std::path::PathBuf;
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
    #[command(flatten)]
    log: logging::LogArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an emulator of the HighLevel Media Storage API (for demos, tests and benchmarks).
    Emulator(emulator::EmulatorArgs),
    /// Mount a location's media library on a directory, in the foreground or with --daemon.
    #[command(args_override_self = true)]
    Mount(mount::MountArgs),
    /// Stop a mount: wait for its uploads, unmount it, and say what was stored or left.
    Unmount(unmount::UnmountArgs),
    /// Start the emulator with a demo library and mount it: try mediafs with no account.
    Demo(mount::DemoArgs),
    /// List the write-back uploads still pending or failed.
    #[command(args_override_self = true)]
    Status(mount::StatusArgs),
    /// Before a mount: check the token, the location, the scopes, the rate limit and the file URLs.
    #[command(after_help = check::EXIT_CODES, args_override_self = true)]
    Check(check::CheckArgs),
    /// List the profiles in ~/.config/mediafs/config.toml, what each mounts and how it signs in.
    #[command(after_help = profiles::FORMAT)]
    Profiles,
    /// Write the man pages or shell completions into a directory (for packaging).
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

/// Parses the command line (or the mount helper's), runs the command, and
/// turns its outcome into an exit code.
pub fn main() -> ExitCode {
    if helper::called_as_helper(std::env::args_os().next()) {
        return match helper::parse(std::env::args_os()) {
            Ok(Some(cli)) => run(cli),
            Ok(None) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("{}: {message}", helper::NAME);
                ExitCode::FAILURE
            }
        };
    }
    match profiles::expand(std::env::args_os().collect()) {
        Ok(argv) => run(Cli::parse_from(argv)),
        Err(message) => failed(&message),
    }
}

fn run(cli: Cli) -> ExitCode {
    let log_file = match cli.log.open_file() {
        Ok(file) => file,
        Err(message) => return failed(&message),
    };
    // A daemon forks here, before the runtime or anything else starts a thread.
    let readiness = match &cli.command {
        Command::Mount(args) if args.daemon => match service::daemonize(log_file.as_ref()) {
            Ok(service::Forked::Parent(code)) => return code,
            Ok(service::Forked::Daemon(readiness)) => readiness,
            Err(message) => return failed(&message),
        },
        _ => service::Readiness::foreground(),
    };
    let log_to = logging::init(&cli.log, log_file);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return failed(&format!("cannot start: {e}")),
    };
    let done = |()| ExitCode::SUCCESS;
    let result = match cli.command {
        Command::Emulator(args) => runtime.block_on(emulator::run(args)).map(done),
        Command::Mount(args) => runtime.block_on(mount::run_mount(args, readiness.hook())),
        Command::Unmount(args) => unmount::run_unmount(args),
        Command::Demo(args) => runtime.block_on(mount::run_demo(args, readiness.hook())),
        Command::Status(args) => mount::run_status(args).map(done),
        Command::Check(args) => runtime.block_on(check::run(args)),
        Command::Generate(args) => generate::run(args).map(done),
        Command::Profiles => profiles::run_list().map(done),
    };
    // A mount stopped at once leaves work behind on purpose: exit without it.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(code) => code,
        // An error is said once where the user looks: on standard error,
        // as a prioritised line when that is the journal, and in the log
        // file too when there is one.
        Err(message) => {
            if log_to != logging::LogTo::StandardError {
                log::error!("{message}");
            }
            readiness.failed(&message);
            if log_to == logging::LogTo::Journal {
                return ExitCode::FAILURE;
            }
            failed(&message)
        }
    }
}

fn failed(message: &str) -> ExitCode {
    eprintln!("mediafs: {message}");
    ExitCode::FAILURE
}

/// Makes a path given on the command line absolute, so that it means the
/// same once a daemon has left the directory it was started in.
fn absolute_path(arg: &str) -> Result<PathBuf, String> {
    std::path::absolute(arg).map_err(|e| format!("not a usable path: {e}"))
}

/// An `http://` or `https://` address, its trailing `/` dropped.
fn http_url(arg: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(arg).map_err(|e| {
        format!("not an address ({e}); give it whole, as https://services.leadconnectorhq.com")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "{arg:?} is not an http:// or https:// address, as https://services.leadconnectorhq.com"
        ));
    }
    Ok(arg.trim_end_matches('/').to_owned())
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
