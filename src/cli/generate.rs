//! `mediafs generate man|completions DIR` (hidden): the man pages and shell
//! completions, made from the same command-line definitions the binary
//! parses, so they never drift from it. `scripts/package.sh` runs it to fill
//! the Debian package; no build script or network is needed.

use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, Subcommand};
use clap_complete::Shell;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// mediafs.1, one mediafs-COMMAND.1 per command, and mount.fuse.mediafs.8.
    Man { dir: PathBuf },
    /// mediafs.bash, _mediafs (zsh) and mediafs.fish.
    Completions { dir: PathBuf },
}

pub fn run(args: GenerateArgs) -> Result<(), String> {
    let (dir, write): (&Path, fn(&Path) -> std::io::Result<()>) = match &args.what {
        What::Man { dir } => (dir, man_pages),
        What::Completions { dir } => (dir, completions),
    };
    std::fs::create_dir_all(dir)
        .and_then(|()| write(dir))
        .map_err(|e| format!("cannot write into {}: {e}", dir.display()))
}

fn man_pages(dir: &Path) -> std::io::Result<()> {
    clap_mangen::generate_to(super::Cli::command(), dir)?;
    clap_mangen::Man::new(super::helper::command())
        .section("8")
        .generate_to(dir)?;
    Ok(())
}

fn completions(dir: &Path) -> std::io::Result<()> {
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut super::Cli::command(), "mediafs", dir)?;
    }
    Ok(())
}
