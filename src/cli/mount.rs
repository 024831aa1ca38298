//! `mediafs mount` and `mediafs demo`: check the token and location, mount in
//! the foreground (or as a daemon, forked before this runs: see `service`),
//! say when the mount answers, and serve until stopped (see `shutdown` for
//! how a mount stops: Ctrl-C, SIGTERM, `mediafs unmount` or `fusermount3 -u`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use fuser::{Config, MountOption, SessionACL};
use tokio_util::task::TaskTracker;

use crate::api::client::DEFAULT_BASE_URL;
use crate::api::token::{OAuthConfig, UserType};
use crate::api::{ApiError, ClientConfig, DeleteStatus, MediaClient, Secret, TokenSource};
use crate::emulator::{self, EmulatorConfig, Faults, TokenGrant};
use crate::fs::{FsConfig, MediaFs, Served, Stale};
use crate::fuse::FuseAdapter;

use super::out;
use super::shutdown::{self, Serving, Signals};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DeleteMode {
    /// Move removed files and folders to the library's trash (restorable in the web app).
    Trash,
    /// Delete them for good.
    Delete,
}

/// Options shared by `mount` and `demo`.
#[derive(Debug, Args)]
pub struct MountOptions {
    /// Refuse every change with EROFS.
    #[arg(long, overrides_with = "no_read_only")]
    read_only: bool,
    /// Take changes (undoes a profile's read_only).
    #[arg(long, overrides_with = "read_only")]
    no_read_only: bool,
    /// A mount option passed through (allow_other, ro, ...); repeatable, or comma-separated.
    #[arg(short = 'o', value_name = "OPTION")]
    options: Vec<String>,
    /// Where staging files, cached content and set times are kept
    /// [default: ~/.cache/mediafs/LOCATION, or ~/.cache/mediafs/agency-COMPANY_ID].
    #[arg(long, value_parser = super::absolute_path)]
    pub(super) cache_dir: Option<PathBuf>,
    /// Seconds a listing is trusted before the service is asked again; changes
    /// made elsewhere show within this time.
    #[arg(long, default_value_t = 5.0)]
    metadata_ttl: f64,
    /// What unlink and rmdir do on the server.
    #[arg(long, value_enum, default_value = "trash")]
    delete_mode: DeleteMode,
    /// Upload .DS_Store, Thumbs.db and the like instead of keeping them in memory.
    #[arg(long, overrides_with = "no_upload_junk")]
    upload_junk: bool,
    /// Keep junk files in memory (undoes a profile's upload_junk).
    #[arg(long, overrides_with = "upload_junk")]
    no_upload_junk: bool,
    /// API requests allowed per 10 seconds (the service allows 100 per
    /// location; trial accounts 25); 0 turns the client's own limit off.
    #[arg(long, default_value_t = 100)]
    rate_limit: usize,
    /// Return from close once the file is safely in the local spool, and
    /// upload in the background; `mediafs status` lists what is pending or failed.
    #[arg(long, overrides_with = "no_write_back")]
    write_back: bool,
    /// Upload before close returns (undoes a profile's write_back).
    #[arg(long, overrides_with = "write_back")]
    no_write_back: bool,
}

/// Where the service is and how to authenticate to it: shared by `mount`
/// and `check`, so that a check speaks for the mount made with the same options.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// The location (sub-account) whose media library to mount.
    #[arg(long, required_unless_present = "agency", conflicts_with = "agency")]
    location: Option<String>,
    /// Mount an agency instead: one folder per sub-account its app is
    /// installed on. COMPANY_ID is the agency's id; the token, or the OAuth
    /// client and refresh token, are the agency's (Company) own.
    #[arg(long, value_name = "COMPANY_ID")]
    pub(super) agency: Option<String>,
    /// With --agency: the marketplace app whose installations are listed
    /// [default: the OAuth client id up to its first '-'].
    #[arg(long, requires = "agency")]
    app_id: Option<String>,
    /// The API's base URL.
    #[arg(long, default_value = DEFAULT_BASE_URL, value_parser = super::http_url)]
    pub(super) base_url: String,
    /// A file holding the token (Private Integration or OAuth access token);
    /// otherwise the MEDIAFS_TOKEN environment variable. Never on the command line.
    #[arg(long, value_parser = super::absolute_path)]
    pub(super) token_file: Option<PathBuf>,
    /// OAuth: the app's client id; with --refresh-token-file, access tokens
    /// are refreshed when they expire.
    #[arg(long, requires = "refresh_token_file")]
    pub(super) oauth_client_id: Option<String>,
    /// OAuth: the app's client secret (or MEDIAFS_OAUTH_CLIENT_SECRET).
    #[arg(long, env = "MEDIAFS_OAUTH_CLIENT_SECRET", hide_env_values = true)]
    oauth_client_secret: Option<String>,
    /// OAuth: a file holding the app's client secret (mode 0600).
    #[arg(long, value_parser = super::absolute_path)]
    oauth_client_secret_file: Option<PathBuf>,
    /// OAuth: a file holding the refresh token; it is replaced, atomically,
    /// by the new refresh token each refresh returns.
    #[arg(long, requires = "oauth_client_id", value_parser = super::absolute_path)]
    pub(super) refresh_token_file: Option<PathBuf>,
    /// Take the settings of this profile in ~/.config/mediafs/config.toml, or
    /// the file MEDIAFS_CONFIG names (`mediafs profiles` lists them); flags
    /// given override them.
    #[arg(long, value_name = "NAME")]
    pub(super) profile: Option<String>,
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// An existing empty directory to mount on.
    #[arg(value_parser = super::absolute_path)]
    mountpoint: PathBuf,
    #[command(flatten)]
    service: ServiceArgs,
    /// Run in the background: return once the mount answers (exit 0), or with
    /// the error that kept it from mounting. The log goes to --log-file, if given.
    #[arg(long)]
    pub(super) daemon: bool,
    #[command(flatten)]
    mount: MountOptions,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to mount the demo library (made if missing).
    mountpoint: PathBuf,
    /// Where the emulator keeps the demo library [default: a fresh temp dir].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Mount a demo agency instead: three sub-accounts side by side.
    #[arg(long)]
    agency: bool,
    #[command(flatten)]
    mount: MountOptions,
}

impl ServiceArgs {
    /// The location given (none with --agency).
    pub(super) fn location(&self) -> &str {
        self.location.as_deref().unwrap_or_default()
    }

    /// Whose token it is, as `/oauth/token`'s user_type says.
    fn user_type(&self) -> UserType {
        match self.agency {
            Some(_) => UserType::Company,
            None => UserType::Location,
        }
    }

    /// The app whose installations an agency mount lists.
    fn app_id(&self) -> Result<String, String> {
        let from_client = self
            .oauth_client_id
            .as_deref()
            .and_then(|id| id.split('-').next())
            .filter(|id| !id.is_empty());
        self.app_id
            .as_deref()
            .or(from_client)
            .map(str::to_owned)
            .ok_or_else(|| {
                "--agency needs the app's id: --app-id, or --oauth-client-id (whose first part \
                 is the app's id)"
                    .into()
            })
    }
}

/// The access token from --token-file or MEDIAFS_TOKEN, if either is given.
fn given_token(token_file: Option<&Path>) -> Result<Option<Secret>, String> {
    if let Some(path) = token_file {
        return TokenSource::read_secret_file(path)
            .map(Some)
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display()));
    }
    Ok(std::env::var("MEDIAFS_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .map(|t| Secret::new(t.trim())))
}

/// The OAuth client secret, from its file or as given.
fn client_secret(args: &ServiceArgs) -> Result<String, String> {
    if let Some(path) = &args.oauth_client_secret_file {
        return TokenSource::read_secret_file(path)
            .map(|s| s.expose().to_owned())
            .map_err(|e| format!("cannot read the client secret file {}: {e}", path.display()));
    }
    args.oauth_client_secret.clone().ok_or_else(|| {
        "--oauth-client-id needs the client secret: --oauth-client-secret-file FILE, \
         MEDIAFS_OAUTH_CLIENT_SECRET or --oauth-client-secret"
            .into()
    })
}

/// The token source the options describe: a fixed token, or OAuth refreshes.
pub(super) fn token_source(args: &ServiceArgs) -> Result<TokenSource, String> {
    let given = given_token(args.token_file.as_deref())?;
    match (&args.oauth_client_id, &args.refresh_token_file) {
        (Some(client_id), Some(refresh_token_file)) => {
            let secret = client_secret(args)?;
            let oauth = OAuthConfig {
                token_url: format!("{}/oauth/token", args.base_url.trim_end_matches('/')),
                client_id: client_id.clone(),
                client_secret: Secret::new(secret),
                refresh_token_file: refresh_token_file.clone(),
                user_type: args.user_type(),
            };
            Ok(TokenSource::oauth(oauth, given))
        }
        _ => given
            .map(TokenSource::fixed)
            .ok_or_else(|| "no token: give --token-file FILE, or set MEDIAFS_TOKEN".into()),
    }
}

pub(super) fn default_cache_dir(location: &str) -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("mediafs").join(location)
}

/// Explains a failed access check in words that say what to do.
fn access_problem(e: &ApiError, location: &str, base_url: &str) -> String {
    match e {
        ApiError::Unauthorized { message } => format!(
            "the service refused access to location {location}: {}. Check that the token is valid and \
             not expired, and that it was issued for this location (with the medias.readonly and medias.write scopes); \
             an agency's (Company) token mounts all its locations with --agency COMPANY_ID",
            message.trim_end_matches('.')
        ),
        ApiError::NotFound { message } => format!("location {location} was not found: {message}"),
        ApiError::Network { message } => format!("cannot reach the service at {base_url}: {message}"),
        other => format!("cannot check access to location {location}: {other}"),
    }
}

fn fuse_config(opts: &MountOptions, fsname: &str) -> Config {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(fsname.to_owned()),
        // fuser's own mount(2), as root, drops Subtype: as an option the
        // kernel reads, the type is fuse.mediafs however the mount is made.
        MountOption::CUSTOM("subtype=mediafs".into()),
    ];
    if opts.read_only {
        config.mount_options.push(MountOption::RO);
    }
    for option in opts
        .options
        .iter()
        .flat_map(|o| o.split(','))
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        match option {
            "allow_other" => {
                config.acl = SessionACL::All;
                // Others may reach the mount: let the kernel check permissions.
                config.mount_options.push(MountOption::DefaultPermissions);
            }
            "allow_root" => config.acl = SessionACL::RootAndOwner,
            "ro" => config.mount_options.push(MountOption::RO),
            "default_permissions" => config.mount_options.push(MountOption::DefaultPermissions),
            other => config
                .mount_options
                .push(MountOption::CUSTOM(other.to_owned())),
        }
    }
    config
}

/// Called once, from a blocking thread, when the mount answers: tells
/// whoever waits for it (the parent of a daemon, systemd) that it is ready.
pub type OnReady = Box<dyn FnOnce(&Path) + Send>;

pub async fn run_mount(args: MountArgs, on_ready: OnReady) -> Result<ExitCode, String> {
    if let Some(profile) = &args.service.profile {
        log::info!("mounting with the settings of profile {profile}, and the flags given");
    }
    let token = token_source(&args.service)?;
    if let Some(company) = &args.service.agency {
        let agency = super::agency::Agency {
            base_url: &args.service.base_url,
            company,
            app_id: &args.service.app_id()?,
        };
        return super::agency::mount_agency(agency, token, &args.mountpoint, &args.mount, on_ready)
            .await;
    }
    mount_location(
        &args.service.base_url,
        args.service.location(),
        token,
        &args.mountpoint,
        &args.mount,
        on_ready,
    )
    .await
}

pub async fn run_demo(args: DemoArgs, on_ready: OnReady) -> Result<ExitCode, String> {
    let temp_data;
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => {
            temp_data = tempfile::tempdir().map_err(|e| format!("cannot make a temp dir: {e}"))?;
            temp_data.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&args.mountpoint).map_err(|e| {
        format!(
            "cannot make the mountpoint {}: {e}",
            args.mountpoint.display()
        )
    })?;
    let mut opts = args.mount;
    let mut demo_cache = None;
    if opts.cache_dir.is_none() {
        let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temp dir: {e}"))?;
        opts.cache_dir = Some(dir.path().to_path_buf());
        demo_cache = Some(dir);
    }
    let result = if args.agency {
        super::agency::run_demo(&args.mountpoint, &data_dir, opts, on_ready).await
    } else {
        demo_location(&args.mountpoint, data_dir, opts, on_ready).await
    };
    if let Some(dir) = demo_cache {
        keep_if_pending(dir);
    }
    result
}

/// `mediafs demo`: one location with the demo library, mounted.
async fn demo_location(
    mountpoint: &Path,
    data_dir: PathBuf,
    opts: MountOptions,
    on_ready: OnReady,
) -> Result<ExitCode, String> {
    let (token, location) = ("demo-token", "demo-location");
    let emulator = emulator::start(EmulatorConfig {
        listen: "127.0.0.1:0".parse().expect("a valid address"),
        data_dir,
        tokens: vec![TokenGrant::new(token, None)],
        locations: vec![location.into()],
        seed_demo: true,
        generate: None,
        public_url: None,
        oauth_clients: Vec::new(),
        refresh_tokens: Vec::new(),
        access_token_ttl: std::time::Duration::from_secs(86399),
        agencies: Vec::new(),
        location_names: Default::default(),
        faults: Faults::default(),
    })
    .await
    .map_err(|e| format!("cannot start the emulator: {e}"))?;
    out::note(format_args!(
        "mediafs demo: emulator with the demo library at {} (location {location}, token \
         {token}: other tools reach it with MEDIAFS_TOKEN={token} and --base-url {} \
         --location {location})",
        emulator.base_url, emulator.base_url
    ));
    let result = mount_location(
        &emulator.base_url,
        location,
        TokenSource::fixed(Secret::new(token)),
        mountpoint,
        &opts,
        on_ready,
    )
    .await;
    emulator.stop().await;
    result
}

/// A temporary cache that still holds uploads not stored stays, and says
/// where: removing it would lose them.
pub(super) fn keep_if_pending(cache: tempfile::TempDir) {
    // A spool that cannot be read may hold uploads: it is kept too.
    let left = match crate::fs::spool_status(cache.path()) {
        Ok(records) if records.is_empty() => return,
        Ok(records) => format!("{} uploads were not stored", records.len()),
        Err(e) => format!("its spool could not be read ({e})"),
    };
    let path = cache.keep();
    out::note(format_args!(
        "mediafs demo: {left}; they stay in {}, and a mount with --cache-dir {} over the \
         same --data-dir uploads them",
        path.display(),
        path.display()
    ));
}

/// A mountpoint mediafs already serves is refused: a second mount on top
/// would hide the first, and its uploads, from everyone.
fn refuse_stacking(mountpoint: &Path) -> Result<(), String> {
    let Ok(path) = super::mounts::absolute(mountpoint) else {
        return Ok(());
    };
    match super::mounts::top_mount(&path) {
        Ok(Some(entry)) if entry.is_mediafs() => Err(format!(
            "{} is already a mediafs mount ({}); unmount it first: mediafs unmount {}",
            path.display(),
            entry.source,
            path.display()
        )),
        _ => Ok(()),
    }
}

/// The core's configuration from the mount's options.
pub(super) fn fs_config(opts: &MountOptions, cache_dir: PathBuf) -> FsConfig {
    let mut config = FsConfig::new(cache_dir);
    config.metadata_ttl = Duration::from_secs_f64(opts.metadata_ttl);
    config.read_only = opts.read_only
        || opts
            .options
            .iter()
            .flat_map(|o| o.split(','))
            .any(|o| o.trim() == "ro");
    config.delete_mode = match opts.delete_mode {
        DeleteMode::Trash => DeleteStatus::Trashed,
        DeleteMode::Delete => DeleteStatus::Deleted,
    };
    config.filter_junk = !opts.upload_junk;
    config.write_back = opts.write_back;
    config
}

/// Checks the mount's options and the mountpoint, and makes what this
/// process writes its user's alone.
pub(super) fn prepare(mountpoint: &Path, opts: &MountOptions) -> Result<(), String> {
    if !opts.metadata_ttl.is_finite() || opts.metadata_ttl < 0.0 {
        return Err("--metadata-ttl must be a number of seconds, 0 or more".into());
    }
    refuse_stacking(mountpoint)?;
    // What this process writes (staging, cached content, the spool, times)
    // is the user's alone, whatever umask it was started with.
    // SAFETY: umask only sets the process's file-creation mask.
    unsafe { libc::umask(0o077) };
    raise_open_file_limit();
    Ok(())
}

/// Each location of an agency mount keeps a few files open (its cache
/// dir's lock, its times store): the soft limit on open files, often 1,024,
/// would stop one of a few hundred locations. It is raised to the hard one.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    // The kernel takes no more than its nr_open, 2^20 by default.
    const MOST: u64 = 1 << 20;
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let wanted = hard.min(MOST);
        if soft < wanted {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, wanted, hard) {
                log::debug!("cannot raise the open-file limit from {soft} to {wanted}: {e}");
            }
        }
    }
}

/// The client settings the mount's options give, for `location`.
pub(super) fn client_config(base_url: &str, location: &str, opts: &MountOptions) -> ClientConfig {
    let mut config = ClientConfig::new(base_url, location);
    config.rate_limit = (opts.rate_limit > 0).then_some((opts.rate_limit, Duration::from_secs(10)));
    config
}

async fn mount_location(
    base_url: &str,
    location: &str,
    token: TokenSource,
    mountpoint: &Path,
    opts: &MountOptions,
    on_ready: OnReady,
) -> Result<ExitCode, String> {
    prepare(mountpoint, opts)?;
    let client = MediaClient::new(client_config(base_url, location, opts), token)
        .map_err(|e| e.to_string())?;
    client
        .verify_access()
        .await
        .map_err(|e| access_problem(&e, location, base_url))?;

    let cache_dir = opts
        .cache_dir
        .clone()
        .unwrap_or_else(|| default_cache_dir(location));
    let _one_mount_per_cache_dir = crate::cache_lock::lock(&cache_dir)?;
    let config = fs_config(opts, cache_dir);
    let cache_dir = config.cache_dir.clone();
    let fs = MediaFs::new(Arc::new(client), config)
        .map_err(|e| format!("cannot prepare the cache dir {}: {e}", cache_dir.display()))?;
    let mounted = Mounted {
        fsname: format!("mediafs:{location}"),
        what: format!("location {location}"),
    };
    serve_mount(Arc::new(fs), mountpoint, opts, mounted, on_ready).await
}

/// How a mount names itself: in the mount table, and to the user.
pub(super) struct Mounted {
    pub fsname: String,
    pub what: String,
}

/// Mounts `fs` on `mountpoint`, says so, and serves it until it stops.
pub(super) async fn serve_mount<F: Served>(
    fs: Arc<F>,
    mountpoint: &Path,
    opts: &MountOptions,
    mounted: Mounted,
    on_ready: OnReady,
) -> Result<ExitCode, String> {
    let uploads = tokio::spawn(fs.clone().run_uploads());
    let tasks = TaskTracker::new();
    let adapter = FuseAdapter::new(fs.clone(), tokio::runtime::Handle::current(), tasks.clone());
    let fuse_config = fuse_config(opts, &mounted.fsname);
    let signals = Signals::listen()?;
    let mp = mountpoint.to_path_buf();
    let session =
        tokio::task::spawn_blocking(move || fuser::Session::new(adapter, &mp, &fuse_config))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot mount on {}: {e}", mountpoint.display()))?;
    let notifier = session.notifier();
    fs.on_stale(Box::new(move |stale| {
        // Off the request's thread: the kernel may hold the folder's lock
        // until the request that got here is answered.
        let notifier = notifier.clone();
        tokio::task::spawn_blocking(move || match stale {
            Stale::Entry { parent, name } => {
                notifier.inval_entry(fuser::INodeNo(parent), name.as_ref())
            }
            // A negative offset drops the attributes only.
            Stale::Attributes(ino) => notifier.inval_inode(fuser::INodeNo(ino), -1, 0),
        });
    }));
    out::note(format_args!(
        "mediafs: {} mounted at {}; Ctrl-C or `mediafs unmount {}` unmounts",
        mounted.what,
        mountpoint.display(),
        mountpoint.display()
    ));
    let root = mountpoint.to_path_buf();
    // The kernel queues the root's attributes until the session's loop,
    // started by `serve`, answers them: then the mount is ready.
    tokio::task::spawn_blocking(move || match std::fs::metadata(&root) {
        Ok(_) => on_ready(&root),
        Err(e) => log::error!("the mount at {} does not answer: {e}", root.display()),
    });
    let serving = Serving {
        fs,
        tasks,
        uploads,
        mountpoint: mountpoint.to_path_buf(),
    };
    shutdown::serve(session, serving, signals).await
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The mount's cache dir [default: ~/.cache/mediafs/LOCATION].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// The location, to find its default cache dir.
    #[arg(long, required_unless_present_any = ["cache_dir", "agency"])]
    location: Option<String>,
    /// The agency of an agency mount, to find its default cache dir.
    #[arg(long, value_name = "COMPANY_ID", conflicts_with = "location")]
    agency: Option<String>,
    /// Take --location, --agency and --cache-dir from this profile.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
}

/// `mediafs status`: the write-back uploads still pending or failed.
pub fn run_status(args: StatusArgs) -> Result<(), String> {
    let default = match (&args.agency, &args.location) {
        (Some(company), _) => format!("agency-{company}"),
        (None, location) => location.clone().unwrap_or_default(),
    };
    if let Some(profile) = &args.profile {
        log::debug!("the status of profile {profile}'s cache dir");
    }
    let dir = args
        .cache_dir
        .unwrap_or_else(|| default_cache_dir(&default));
    if !dir.is_dir() {
        // A mistyped location would otherwise read as "nothing pending".
        return Err(format!(
            "no cache dir at {}: no mount has used it (check --location, --agency or --cache-dir)",
            dir.display()
        ));
    }
    let records = crate::fs::spool_status(&dir)
        .map_err(|e| format!("cannot read the spool in {}: {e}", dir.display()))?;
    let failed = records.iter().filter(|(_, r)| r.failed.is_some()).count();
    // A reader that has seen enough (`| head -1`) ends the listing.
    if !out::line(format_args!(
        "{} uploads pending, {failed} failed, in the spool of {}",
        records.len() - failed,
        dir.display()
    ))? {
        return Ok(());
    }
    for (id, r) in &records {
        let state = match &r.failed {
            Some(why) => format!("FAILED: {why}"),
            None => "pending".into(),
        };
        if !out::line(format_args!(
            "  {} ({} bytes, spooled {}) {state}  [{id}]",
            r.name,
            r.size,
            r.spooled_at.to_rfc3339()
        ))? {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};

    /// The mount's core settings, parsed from a command line.
    fn parsed(argv: &[&str]) -> super::FsConfig {
        let cli = Cli::try_parse_from(argv).unwrap();
        let Command::Mount(args) = cli.command else {
            panic!("not a mount");
        };
        super::fs_config(&args.mount, "/tmp/c".into())
    }

    #[test]
    fn a_later_flag_undoes_a_profiles_switch() {
        let base = ["mediafs", "mount", "/m", "--location", "L"];
        let on = [&base[..], &["--write-back", "--read-only"]].concat();
        let config = parsed(&on);
        assert!(config.write_back && config.read_only);
        let off = [&on[..], &["--no-write-back", "--no-read-only"]].concat();
        let config = parsed(&off);
        assert!(!config.write_back && !config.read_only);
        // A value given twice (a profile's, then the command line's): the last wins.
        let ttl = [&base[..], &["--metadata-ttl", "10", "--metadata-ttl", "2"]].concat();
        assert_eq!(parsed(&ttl).metadata_ttl.as_secs(), 2);
    }
}
