//! `mount.fuse.mediafs`, the mount helper: what makes `mount -t fuse.mediafs
//! LOCATION /mnt/media -o token_file=...` and `/etc/fstab` lines work.
//!
//! For a type `fuse.mediafs`, mount(8) runs `/sbin/mount.fuse.mediafs SOURCE
//! MOUNTPOINT [-s] [-f] [-n] [-v] -o OPTIONS` and waits for it; only when that
//! file is missing does it fall back to fuse3's `mount.fuse`, which would run
//! `mediafs SOURCE MOUNTPOINT -o OPTIONS` through `/bin/sh`, looked up on a
//! PATH that systemd keeps short, with every option it does not know handed
//! on as is. So the package installs `mount.fuse.mediafs` as a symlink to the
//! binary, and the binary, seeing that name, becomes the helper: it maps the
//! options to a `mediafs mount --daemon` command line, which it parses and
//! runs as if typed, so mount(8) returns once the mount answers, or fails
//! with the mount's own message.
//!
//! mount(8) has already dropped the options only it reads (`noauto`, `x-*`,
//! `comment=`) and turned `user` into `nosuid,noexec,nodev`; the options it
//! passes on for systemd or other fstab readers, and those that change
//! nothing on a mount whose files are never executable, set-id or devices,
//! are dropped here. An unknown option is an error naming it, never its
//! value: a mistyped `token=` must not print a token.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser};

use super::Cli;

/// The helper's name: mount(8) runs `mount.fuse.TYPE` for a type `fuse.TYPE`.
pub const NAME: &str = "mount.fuse.mediafs";

#[derive(Debug, Parser)]
#[command(
    name = NAME,
    version,
    about = "Mount a HighLevel media library with mount(8) or /etc/fstab (type fuse.mediafs)",
    long_about = "Mount a HighLevel media library with mount(8) or /etc/fstab (type fuse.mediafs).\n\n\
    mount -t fuse.mediafs LOCATION_ID /mnt/media -o token_file=/etc/mediafs/token\n\n\
    Runs `mediafs mount MOUNTPOINT --location LOCATION_ID --daemon` with the options \
    below mapped to its flags, and returns once the mount answers."
)]
struct HelperArgs {
    /// The location id (the first field of an fstab line).
    location: String,
    /// The directory to mount on.
    mountpoint: PathBuf,
    /// Mount options, comma-separated (listed below); repeatable.
    #[arg(short = 'o', value_name = "OPTIONS")]
    options: Vec<String>,
    /// Sloppy: ignore unknown options, with a warning, instead of failing.
    #[arg(short = 's')]
    sloppy: bool,
    /// Fake: check the options, then stop without mounting.
    #[arg(short = 'f')]
    fake: bool,
    /// Do not write /etc/mtab: mediafs never does; accepted for mount(8).
    #[arg(short = 'n')]
    _no_mtab: bool,
    /// Verbose: print the mediafs command the options map to.
    #[arg(short = 'v')]
    verbose: bool,
    /// The filesystem type, if given: fuse.mediafs.
    #[arg(short = 't', value_name = "TYPE")]
    fs_type: Option<String>,
}

/// What one `-o` option becomes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Becomes {
    /// `NAME=VALUE`: this flag of `mediafs mount`, with the value.
    Value(&'static str),
    /// `NAME`: this flag of `mediafs mount`.
    Switch(&'static str),
    /// `NAME`: an option of the FUSE mount itself (`mediafs mount -o NAME`).
    Fuse,
    /// Meant for mount(8), systemd or other readers of fstab, or no change
    /// on this filesystem: dropped.
    Dropped,
}

use Becomes::{Dropped, Fuse, Switch, Value};

/// Every option the helper knows: its syntax, what it becomes, and its help.
const OPTIONS: &[(&str, Becomes, &str)] = &[
    ("profile=NAME", Value("--profile"), "the settings of a profile in ~/.config/mediafs/config.toml of the user mounting; the first field is then the profile's name, or a location id"),
    ("token_file=FILE", Value("--token-file"), "the file holding the token (Private Integration or OAuth access token)"),
    ("base_url=URL", Value("--base-url"), "the API's base URL"),
    ("cache_dir=DIR", Value("--cache-dir"), "staging files, cached content and set times [default: ~/.cache/mediafs/LOCATION of the user mounting]"),
    ("metadata_ttl=SECONDS", Value("--metadata-ttl"), "how long a listing is trusted [default: 5]"),
    ("delete_mode=MODE", Value("--delete-mode"), "what rm does on the server: trash (the default) or delete"),
    ("rate_limit=N", Value("--rate-limit"), "API requests allowed per 10 seconds; 0 turns the limit off [default: 100]"),
    ("agency=COMPANY_ID", Value("--agency"), "mount an agency's sub-accounts side by side (the first field is then a label); the token or OAuth client is the agency's"),
    ("app_id=ID", Value("--app-id"), "with agency: the app whose installations are listed [default: the OAuth client id up to its first '-']"),
    ("oauth_client_id=ID", Value("--oauth-client-id"), "OAuth: the app's client id (its secret in oauth_client_secret_file)"),
    ("oauth_client_secret_file=FILE", Value("--oauth-client-secret-file"), "OAuth: the file holding the app's client secret (0600)"),
    ("refresh_token_file=FILE", Value("--refresh-token-file"), "OAuth: the file holding the refresh token"),
    ("log_file=FILE", Value("--log-file"), "append the log to FILE (otherwise it is discarded)"),
    ("log_level=LEVEL", Value("--log-level"), "error, warn, info, debug or trace [default: info]"),
    ("write_back", Switch("--write-back"), "upload in the background once a closed file is in the local spool"),
    ("upload_junk", Switch("--upload-junk"), "upload .DS_Store, Thumbs.db and the like"),
    ("read_only", Switch("--read-only"), "refuse every change"),
    ("ro", Switch("--read-only"), "the same"),
    ("allow_other", Fuse, "let every user in; the kernel then checks file modes"),
    ("allow_root", Fuse, "let root in as well as the user mounting"),
    ("default_permissions", Fuse, "let the kernel check file modes"),
    ("_netdev", Dropped, ""),
    ("nofail", Dropped, ""),
    ("auto", Dropped, ""),
    ("noauto", Dropped, ""),
    ("user", Dropped, ""),
    ("nouser", Dropped, ""),
    ("users", Dropped, ""),
    ("defaults", Dropped, ""),
    ("rw", Dropped, ""),
    ("suid", Dropped, ""),
    ("nosuid", Dropped, ""),
    ("dev", Dropped, ""),
    ("nodev", Dropped, ""),
    ("exec", Dropped, ""),
    ("noexec", Dropped, ""),
    ("comment=TEXT", Dropped, ""),
    // The kernel's access-time and sync flags change nothing here: mediafs
    // keeps the times it is given itself, and every close uploads.
    ("atime", Dropped, ""),
    ("noatime", Dropped, ""),
    ("relatime", Dropped, ""),
    ("norelatime", Dropped, ""),
    ("strictatime", Dropped, ""),
    ("nostrictatime", Dropped, ""),
    ("lazytime", Dropped, ""),
    ("nolazytime", Dropped, ""),
    ("diratime", Dropped, ""),
    ("nodiratime", Dropped, ""),
    ("sync", Dropped, ""),
    ("async", Dropped, ""),
    ("dirsync", Dropped, ""),
    ("owner", Dropped, ""),
    ("group", Dropped, ""),
    ("iversion", Dropped, ""),
    ("noiversion", Dropped, ""),
    ("mand", Dropped, ""),
    ("nomand", Dropped, ""),
    ("silent", Dropped, ""),
    ("loud", Dropped, ""),
];

/// Options that would put a secret where every user can read it.
const SECRETS: &[&str] = &["token", "refresh_token", "oauth_client_secret"];

/// Whether the binary was called by the helper's name (argv[0]).
pub fn called_as_helper(argv0: Option<OsString>) -> bool {
    argv0
        .as_deref()
        .map(std::path::Path::new)
        .and_then(|p| p.file_name())
        .is_some_and(|name| name == NAME)
}

/// The helper's command-line definition, its options listed after the flags.
pub fn command() -> clap::Command {
    HelperArgs::command().after_long_help(options_help())
}

/// Parses the helper's command line into the `mediafs mount` command it
/// stands for; `None` when asked only to check (-f).
pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Option<Cli>, String> {
    // Errors in the helper's own flags, --help and --version end here, as clap does.
    let matches = command().get_matches_from(argv);
    let args = HelperArgs::from_arg_matches(&matches).map_err(|e| e.to_string())?;
    let mount = mount_command(&args)?;
    if args.verbose {
        let words: Vec<_> = mount.iter().map(|w| w.to_string_lossy()).collect();
        eprintln!("{NAME}: {}", words.join(" "));
    }
    // At boot HOME may be unset: the profile file is the user's, as by hand.
    default_home();
    let mount = super::profiles::expand(mount)?;
    let cli = Cli::try_parse_from(&mount).map_err(|e| {
        let rendered = e.render().to_string();
        let first = rendered.lines().next().unwrap_or_default().to_owned();
        format!(
            "in the mount options: {}",
            first.trim_start_matches("error: ")
        )
    })?;
    if args.fake {
        return Ok(None);
    }
    default_home();
    Ok(Some(cli))
}

/// The `mediafs mount --daemon` command line the helper's arguments map to.
fn mount_command(args: &HelperArgs) -> Result<Vec<OsString>, String> {
    if let Some(fs_type) = args.fs_type.as_deref() {
        if fs_type != "fuse.mediafs" {
            return Err(format!(
                "this helper mounts type fuse.mediafs, not {fs_type}"
            ));
        }
    }
    let mut argv: Vec<OsString> = vec!["mediafs".into(), "mount".into()];
    argv.push(args.mountpoint.clone().into());
    // With profile=NAME, a first field that is NAME only labels the line;
    // with agency=, the first field is no location either.
    let labels_only = args.options.iter().flat_map(|o| o.split(',')).any(|o| {
        o.strip_prefix("profile=") == Some(args.location.as_str()) || o.starts_with("agency=")
    });
    if !labels_only {
        argv.extend(["--location".into(), args.location.clone().into()]);
    }
    argv.push("--daemon".into());
    let mut fuse = Vec::new();
    for option in args.options.iter().flat_map(|o| o.split(',')) {
        let (name, value) = match option.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (option, None),
        };
        match (known(name), value) {
            (Some(Value(flag)), Some(value)) => argv.extend([flag.into(), value.into()]),
            (Some(Value(_)), None) => return Err(format!("the option {name} needs a value")),
            (Some(Switch(flag)), None) if !argv.iter().any(|w| w == flag) => argv.push(flag.into()),
            (Some(Fuse), None) if !fuse.contains(&name) => fuse.push(name),
            (Some(Switch(_) | Fuse), None) | (Some(Dropped), _) => {}
            (Some(Switch(_) | Fuse), Some(_)) => {
                return Err(format!("the option {name} takes no value"))
            }
            (None, _) if option.is_empty() => {}
            (None, _) if SECRETS.contains(&name) => return Err(secret_option(name)),
            (None, _) if args.sloppy => eprintln!("{NAME}: ignoring the unknown option {name}"),
            (None, _) => return Err(unknown_option(name)),
        }
    }
    if !fuse.is_empty() {
        argv.extend(["-o".into(), fuse.join(",").into()]);
    }
    Ok(argv)
}

/// What a known option becomes; `x-` options, for other programs, are dropped.
fn known(name: &str) -> Option<Becomes> {
    if name.starts_with("x-") {
        return Some(Dropped);
    }
    OPTIONS
        .iter()
        .find(|(syntax, ..)| syntax.split('=').next() == Some(name))
        .map(|&(_, becomes, _)| becomes)
}

fn unknown_option(name: &str) -> String {
    format!(
        "unknown mount option {name}: `{NAME} --help` lists the options mediafs takes \
         (mount -s ignores unknown ones)"
    )
}

fn secret_option(name: &str) -> String {
    format!(
        "the option {name} would show a secret to every user (mount options are public): \
         give the file holding it with {name}_file=FILE"
    )
}

/// The options' section of the help and man page, made from [`OPTIONS`].
fn options_help() -> String {
    let mut help = String::from("Options (-o), mapped to `mediafs mount` flags:\n");
    for (syntax, becomes, text) in OPTIONS {
        match becomes {
            Value(flag) | Switch(flag) => help += &format!("  {syntax:<24} {flag}: {text}\n"),
            Fuse => help += &format!("  {syntax:<24} FUSE: {text}\n"),
            Dropped => {}
        }
    }
    let dropped: Vec<_> = OPTIONS
        .iter()
        .filter(|(_, becomes, _)| *becomes == Dropped)
        .map(|(syntax, ..)| *syntax)
        .collect();
    help += &format!(
        "\nDropped, as meant for mount(8), systemd or other fstab readers, or changing \
         nothing here (files are never executable, set-id or devices): {}, x-*.\n\
         \nThe token is never an option (options are public): use token_file.",
        dropped.join(", ")
    );
    help
}

/// mount(8) run by systemd at boot may have no HOME: the default cache dir
/// is then still the mounting user's (~/.cache/mediafs/LOCATION, where
/// `mediafs status` looks and the write-back spool survives a reboot), not
/// one under /tmp.
fn default_home() {
    if std::env::var_os("HOME").is_some() {
        return;
    }
    if let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::getuid()) {
        // Still the only thread: nothing reads the environment meanwhile.
        std::env::set_var("HOME", user.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper(argv: &[&str]) -> HelperArgs {
        let argv = [NAME].iter().chain(argv).map(OsString::from);
        HelperArgs::from_arg_matches(&command().try_get_matches_from(argv).unwrap()).unwrap()
    }

    fn mapped(argv: &[&str]) -> Result<Vec<String>, String> {
        mount_command(&helper(argv)).map(|words| {
            words
                .into_iter()
                .map(|w| w.into_string().unwrap())
                .collect()
        })
    }

    const BASE: [&str; 6] = [
        "mediafs",
        "mount",
        "/mnt/media",
        "--location",
        "Loc1",
        "--daemon",
    ];

    fn base_and(rest: &[&str]) -> Vec<String> {
        BASE.iter().chain(rest).map(|w| w.to_string()).collect()
    }

    #[test]
    fn the_helper_is_recognised_by_the_name_it_is_called_by() {
        assert!(called_as_helper(Some("/sbin/mount.fuse.mediafs".into())));
        assert!(called_as_helper(Some("mount.fuse.mediafs".into())));
        assert!(!called_as_helper(Some("/usr/bin/mediafs".into())));
        assert!(!called_as_helper(Some("/sbin/mount.fuse".into())));
        assert!(!called_as_helper(None));
    }

    #[test]
    fn a_profile_named_in_the_first_field_is_no_location() {
        let argv = mapped(&["acme", "/mnt/media", "-o", "profile=acme,_netdev"]).unwrap();
        assert_eq!(
            argv,
            [
                "mediafs",
                "mount",
                "/mnt/media",
                "--daemon",
                "--profile",
                "acme"
            ]
        );
        let argv = mapped(&["Loc1", "/mnt/media", "-o", "profile=acme"]).unwrap();
        assert_eq!(argv, base_and(&["--profile", "acme"]));
    }

    #[test]
    fn every_mediafs_option_maps_to_its_flag() {
        let options = "token_file=/etc/mediafs/token,base_url=http://127.0.0.1:8787,\
            cache_dir=/var/cache/m,metadata_ttl=2.5,delete_mode=delete,write_back,ro,\
            rate_limit=25,upload_junk,oauth_client_id=app1,refresh_token_file=/etc/r,\
            log_file=/var/log/m.log,log_level=debug";
        let argv = mapped(&["Loc1", "/mnt/media", "-o", options]).unwrap();
        assert_eq!(
            argv,
            base_and(&[
                "--token-file",
                "/etc/mediafs/token",
                "--base-url",
                "http://127.0.0.1:8787",
                "--cache-dir",
                "/var/cache/m",
                "--metadata-ttl",
                "2.5",
                "--delete-mode",
                "delete",
                "--write-back",
                "--read-only",
                "--rate-limit",
                "25",
                "--upload-junk",
                "--oauth-client-id",
                "app1",
                "--refresh-token-file",
                "/etc/r",
                "--log-file",
                "/var/log/m.log",
                "--log-level",
                "debug",
            ])
        );
        // And `mediafs mount` takes every one of them.
        let cli = Cli::try_parse_from(&argv).unwrap();
        assert!(matches!(cli.command, super::super::Command::Mount(ref m) if m.daemon));
    }

    #[test]
    fn fuse_options_pass_through_once_and_read_only_is_given_once() {
        let argv = mapped(&[
            "Loc1",
            "/mnt/media",
            "-o",
            "allow_other,ro",
            "-o",
            "default_permissions,read_only,allow_other",
        ])
        .unwrap();
        assert_eq!(
            argv,
            base_and(&["--read-only", "-o", "allow_other,default_permissions"])
        );
        Cli::try_parse_from(&argv).unwrap();
    }

    #[test]
    fn options_for_mount_systemd_and_fstab_are_dropped() {
        let options = "rw,nosuid,nodev,noexec,suid,dev,exec,_netdev,nofail,auto,noauto,user,\
            nouser,users,defaults,comment=systemd.automount,x-systemd.automount,\
            x-systemd.mount-timeout=30,x-gvfs-show,noatime,relatime,nodiratime,lazytime,sync,,";
        let argv = mapped(&["Loc1", "/mnt/media", "-n", "-v", "-o", options]).unwrap();
        assert_eq!(argv, base_and(&[]));
    }

    #[test]
    fn an_unknown_option_is_an_error_that_names_it_but_never_its_value() {
        let err =
            mapped(&["Loc1", "/mnt/media", "-o", "allow_other,colour=ultraviolet"]).unwrap_err();
        assert!(err.contains("unknown mount option colour"), "{err}");
        assert!(!err.contains("ultraviolet"), "{err}");
        let err = mapped(&["Loc1", "/mnt/media", "-o", "token=pit-secret-123"]).unwrap_err();
        assert!(err.contains("token_file=FILE"), "{err}");
        assert!(!err.contains("pit-secret-123"), "{err}");
    }

    #[test]
    fn sloppy_mounts_ignore_unknown_options() {
        let argv = mapped(&["Loc1", "/mnt/media", "-s", "-o", "colour=blue,write_back"]).unwrap();
        assert_eq!(argv, base_and(&["--write-back"]));
        // Never a secret, though.
        assert!(mapped(&["Loc1", "/mnt/media", "-s", "-o", "token=x"]).is_err());
    }

    #[test]
    fn values_are_required_exactly_where_expected() {
        let err = mapped(&["Loc1", "/mnt/media", "-o", "token_file"]).unwrap_err();
        assert!(err.contains("token_file needs a value"), "{err}");
        let err = mapped(&["Loc1", "/mnt/media", "-o", "write_back=yes"]).unwrap_err();
        assert!(err.contains("write_back takes no value"), "{err}");
    }

    #[test]
    fn only_the_fuse_mediafs_type_is_taken() {
        assert!(mapped(&["Loc1", "/mnt/media", "-t", "fuse.mediafs"]).is_ok());
        let err = mapped(&["Loc1", "/mnt/media", "-t", "fuse.sshfs"]).unwrap_err();
        assert!(err.contains("not fuse.sshfs"), "{err}");
    }

    #[test]
    fn a_bad_value_is_reported_by_mediafs_mount_and_a_check_mounts_nothing() {
        let argv = |o: &str| {
            [
                "/sbin/mount.fuse.mediafs",
                "Loc1",
                "/mnt/media",
                "-f",
                "-o",
                o,
            ]
            .map(OsString::from)
        };
        let err = parse(argv("delete_mode=shred")).unwrap_err();
        assert!(
            err.contains("shred") && err.contains("--delete-mode"),
            "{err}"
        );
        assert!(parse(argv("delete_mode=trash")).unwrap().is_none());
    }
}
