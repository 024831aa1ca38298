//! Named profiles, as rclone keeps remotes in `rclone.conf`: a user with
//! several locations or agencies keeps each one's settings under a name in
//! `~/.config/mediafs/config.toml` (or `$XDG_CONFIG_HOME/mediafs/…`, or the
//! file `MEDIAFS_CONFIG` names):
//!
//! ```toml
//! [profiles.acme]
//! location = "ve9EPM428h8vShlRW1KT"
//! token_file = "~/.config/mediafs/acme.token"
//! write_back = true
//! ```
//!
//! `mediafs mount MNT --profile acme` takes them; a flag on the command
//! line overrides its profile's value. A profile becomes the flags it
//! stands for, put before those given, so that one set of rules (clap's)
//! reads both. Secrets never go in the file: a token, client secret or
//! refresh token there is refused, with the file key to use instead.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Keys that would hold a secret, and the key that names its file instead.
const SECRETS: &[(&str, &str)] = &[
    ("token", "token_file"),
    ("access_token", "token_file"),
    ("client_secret", "oauth_client_secret_file"),
    ("oauth_client_secret", "oauth_client_secret_file"),
    ("refresh_token", "refresh_token_file"),
];

/// One profile: the settings of `mediafs mount` and `mediafs check`, by
/// their flags' names with `_` for `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    location: Option<String>,
    agency: Option<String>,
    app_id: Option<String>,
    base_url: Option<String>,
    token_file: Option<PathBuf>,
    oauth_client_id: Option<String>,
    oauth_client_secret_file: Option<PathBuf>,
    refresh_token_file: Option<PathBuf>,
    // Mount settings only.
    cache_dir: Option<PathBuf>,
    metadata_ttl: Option<f64>,
    delete_mode: Option<String>,
    write_back: Option<bool>,
    read_only: Option<bool>,
    upload_junk: Option<bool>,
    rate_limit: Option<usize>,
    #[serde(default)]
    options: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    profiles: BTreeMap<String, toml::Table>,
}

/// Where profiles are read from.
pub fn config_path() -> PathBuf {
    if let Some(path) = std::env::var_os("MEDIAFS_CONFIG") {
        return PathBuf::from(path);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("/etc"));
    base.join("mediafs").join("config.toml")
}

/// The profiles of a file, each checked on its own (a mistake in one never
/// keeps another from use); none when there is no file.
pub type Profiles = BTreeMap<String, Result<Profile, String>>;

/// Every profile in the file; an error only when the file cannot be read
/// or is not TOML.
pub fn load(path: &Path) -> Result<Profiles, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    // The error's own rendering quotes the line, which may hold a secret:
    // only its message and line number are said.
    let file: ConfigFile = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start].matches('\n').count() + 1);
        let at = line.map(|n| format!(" at line {n}")).unwrap_or_default();
        format!("{} is not valid{at}: {}", path.display(), e.message())
    })?;
    Ok(file
        .profiles
        .into_iter()
        .map(|(name, table)| {
            let checked = check(table)
                .map_err(|message| format!("{}: profile {name}: {message}", path.display()));
            (name, checked)
        })
        .collect())
}

fn check(table: toml::Table) -> Result<Profile, String> {
    if let Some((key, instead)) = SECRETS.iter().find(|(k, _)| table.contains_key(*k)) {
        return Err(format!(
            "{key} holds a secret, which stays out of this file: put it alone in a file only \
             you can read (chmod 600) and name that file with {instead}"
        ));
    }
    let profile: Profile = table
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_owned())?;
    if profile.location.is_some() == profile.agency.is_some() {
        return Err("give either location or agency".into());
    }
    Ok(profile)
}

/// `~/x` as the user means it.
fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

impl Profile {
    /// The flags this profile stands for, for `subcommand`; `own_target`:
    /// the command line names its location or agency itself.
    fn flags(&self, subcommand: &str, own_target: bool) -> Vec<OsString> {
        let mut flags: Vec<OsString> = Vec::new();
        let mut value = |flag: &str, v: Option<OsString>| {
            if let Some(v) = v {
                flags.push(flag.into());
                flags.push(v);
            }
        };
        let text = |v: &Option<String>| v.clone().map(OsString::from);
        let path = |v: &Option<PathBuf>| v.as_deref().map(|p| expand_home(p).into_os_string());
        if !own_target {
            value("--location", text(&self.location));
            value("--agency", text(&self.agency));
            if subcommand != "status" {
                value("--app-id", text(&self.app_id));
            }
        }
        // The cache dir is the profile's target's: another target gets its own.
        let cache_dir = if own_target {
            None
        } else {
            path(&self.cache_dir)
        };
        if subcommand == "status" {
            value("--cache-dir", cache_dir);
            return flags;
        }
        value("--base-url", text(&self.base_url));
        value("--token-file", path(&self.token_file));
        value("--oauth-client-id", text(&self.oauth_client_id));
        value(
            "--oauth-client-secret-file",
            path(&self.oauth_client_secret_file),
        );
        value("--refresh-token-file", path(&self.refresh_token_file));
        // A check speaks for the mount: with its limit, and read-only if it is.
        value(
            "--rate-limit",
            self.rate_limit.map(|n| n.to_string().into()),
        );
        if subcommand != "mount" {
            if self.read_only == Some(true) {
                flags.push("--read-only".into());
            }
            return flags;
        }
        value("--cache-dir", cache_dir);
        value(
            "--metadata-ttl",
            self.metadata_ttl.map(|t| t.to_string().into()),
        );
        value("--delete-mode", text(&self.delete_mode));
        for option in &self.options {
            value("-o", Some(option.into()));
        }
        for (on, flag) in [
            (self.write_back, "--write-back"),
            (self.read_only, "--read-only"),
            (self.upload_junk, "--upload-junk"),
        ] {
            if on == Some(true) {
                flags.push(flag.into());
            }
        }
        flags
    }

    /// What the profile mounts, in words.
    fn target(&self) -> String {
        match (&self.location, &self.agency) {
            (Some(location), _) => format!("location {location}"),
            (_, Some(agency)) => format!("agency {agency}"),
            _ => "nothing".into(),
        }
    }

    /// How it authenticates, and whether its secret files are in order.
    fn credentials(&self) -> String {
        let file = |path: &Path| {
            let path = expand_home(path);
            use std::os::unix::fs::PermissionsExt;
            match std::fs::metadata(&path) {
                Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                    format!("{} (readable by others: chmod 600 it)", path.display())
                }
                Ok(_) => format!("{} (0600)", path.display()),
                Err(e) => format!("{} ({e})", path.display()),
            }
        };
        let mut said = Vec::new();
        if let Some(client) = &self.oauth_client_id {
            said.push(format!("OAuth client {client}"));
        }
        if let Some(secret) = &self.oauth_client_secret_file {
            said.push(format!("client secret in {}", file(secret)));
        }
        if let Some(refresh) = &self.refresh_token_file {
            said.push(format!("refresh token in {}", file(refresh)));
        }
        if let Some(token) = &self.token_file {
            said.push(format!("token in {}", file(token)));
        }
        if said.is_empty() {
            said.push("token from MEDIAFS_TOKEN".into());
        }
        said.join(", ")
    }
}

/// The subcommands a profile applies to.
const TAKE_PROFILES: &[&str] = &["mount", "check", "status"];

/// Flags that name what to mount: given, they replace the profile's.
const TARGETS: &[&str] = &["--location", "--agency"];

/// `argv` with the flags of its `--profile NAME` put right after the
/// subcommand, so that the flags given (`--profile` among them, for the
/// log) come after and override them.
pub fn expand(argv: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let Some(at) = argv
        .iter()
        .position(|a| a.to_str().is_some_and(|a| TAKE_PROFILES.contains(&a)))
    else {
        return Ok(argv);
    };
    let subcommand = argv[at].to_string_lossy().into_owned();
    let mut name = None;
    let mut own_target = false;
    let mut words = argv[at + 1..].iter();
    while let Some(word) = words.next() {
        match word.to_str() {
            // What follows `--` is positional.
            Some("--") => break,
            Some("--profile") => {
                name = Some(
                    words
                        .next()
                        .ok_or("--profile needs a profile's name")?
                        .clone(),
                )
            }
            Some(w) if w.starts_with("--profile=") => name = Some(w["--profile=".len()..].into()),
            Some(w)
                if TARGETS
                    .iter()
                    .any(|t| w == *t || w.starts_with(&format!("{t}="))) =>
            {
                own_target = true
            }
            _ => {}
        }
    }
    let Some(name) = name else {
        return Ok(argv);
    };
    let name = name.to_string_lossy().into_owned();
    let path = config_path();
    let profiles = load(&path)?;
    let profile = match profiles.get(&name) {
        Some(checked) => checked.as_ref().map_err(Clone::clone)?,
        None => return Err(no_such_profile(&name, &path, &profiles)),
    };
    log::debug!("profile {name} from {}", path.display());
    let mut expanded: Vec<OsString> = argv[..=at].to_vec();
    expanded.extend(profile.flags(&subcommand, own_target));
    expanded.extend(argv[at + 1..].iter().cloned());
    Ok(expanded)
}

/// Why `--profile NAME` names nothing, and what there is.
fn no_such_profile(name: &str, path: &Path, profiles: &Profiles) -> String {
    if !path.exists() {
        return format!(
            "no profile {name}: there is no profile file {} (`mediafs profiles --help` shows \
             what to write there)",
            path.display()
        );
    }
    let known: Vec<&str> = profiles.keys().map(String::as_str).collect();
    if known.is_empty() {
        format!("no profile {name}: {} holds none", path.display())
    } else {
        format!(
            "no profile {name} in {} (it has: {})",
            path.display(),
            known.join(", ")
        )
    }
}

/// `mediafs profiles`: each profile, what it mounts and how it signs in.
pub fn run_list() -> Result<(), String> {
    let path = config_path();
    let profiles = load(&path)?;
    if profiles.is_empty() {
        let why = match path.exists() {
            true => "holds none",
            false => "does not exist",
        };
        super::out::line(format_args!(
            "no profiles: {} {why} (`mediafs profiles --help` shows what to write there)",
            path.display()
        ))?;
        return Ok(());
    }
    super::out::line(format_args!("profiles in {}:", path.display()))?;
    for (name, checked) in &profiles {
        let line = match checked {
            Ok(profile) => {
                let service = profile
                    .base_url
                    .as_deref()
                    .map(|u| format!(" at {u}"))
                    .unwrap_or_default();
                format!(
                    "  {name}: {}{service}; {}",
                    profile.target(),
                    profile.credentials()
                )
            }
            Err(e) => format!("  {name}: UNUSABLE: {e}"),
        };
        if !super::out::line(format_args!("{line}"))? {
            break;
        }
    }
    Ok(())
}

/// What `mediafs profiles --help` shows after the flags.
pub const FORMAT: &str = "\
A profile file (~/.config/mediafs/config.toml, or $MEDIAFS_CONFIG) holds named profiles:

  [profiles.acme]
  location = \"ve9EPM428h8vShlRW1KT\"
  token_file = \"~/.config/mediafs/acme.token\"   # the token alone, chmod 600
  write_back = true
  metadata_ttl = 10

  [profiles.agency]
  agency = \"COMPANY_ID\"
  oauth_client_id = \"APP_ID-SUFFIX\"
  oauth_client_secret_file = \"~/.config/mediafs/agency.secret\"
  refresh_token_file = \"~/.config/mediafs/agency.refresh\"

Keys are the flags of `mediafs mount` with _ for -: location, agency, app_id, base_url,
token_file, oauth_client_id, oauth_client_secret_file, refresh_token_file, cache_dir,
metadata_ttl, delete_mode, write_back, read_only, upload_junk, rate_limit, options (a
list of -o values). `mediafs mount MNT --profile acme` uses one; flags given override
it. Secrets stay out of the file: only the names of the files that hold them.";

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_profile_becomes_flags_before_those_given() {
        let (_dir, path) = write(
            "[profiles.acme]\nlocation = \"Loc1\"\ntoken_file = \"/t\"\nwrite_back = true\n\
             metadata_ttl = 10\noptions = [\"allow_other\"]\n",
        );
        let profiles = load(&path).unwrap();
        let acme = profiles["acme"].as_ref().unwrap();
        let flags: Vec<String> = acme
            .flags("mount", false)
            .into_iter()
            .map(|f| f.into_string().unwrap())
            .collect();
        assert_eq!(
            flags,
            [
                "--location",
                "Loc1",
                "--token-file",
                "/t",
                "--metadata-ttl",
                "10",
                "-o",
                "allow_other",
                "--write-back"
            ]
        );
        let check: Vec<OsString> = acme.flags("check", false);
        assert_eq!(check.len(), 4, "check takes the service's flags only");
        let own: Vec<OsString> = acme.flags("check", true);
        assert_eq!(
            own,
            ["--token-file", "/t"],
            "a target given replaces the profile's"
        );
        let status: Vec<OsString> = acme.flags("status", false);
        assert_eq!(status, ["--location", "Loc1"]);
    }

    #[test]
    fn secrets_and_typos_are_refused_with_what_to_write() {
        let (_d, path) = write(
            "[profiles.a]\nlocation = \"L\"\ntoken = \"pit-123\"\n\
             [profiles.b]\nlocation = \"L\"\nwriteback = true\n\
             [profiles.c]\ntoken_file = \"/t\"\n\
             [profiles.d]\nlocation = \"L\"\n",
        );
        let profiles = load(&path).unwrap();
        let err = profiles["a"].as_ref().unwrap_err();
        assert!(
            err.contains("token_file") && !err.contains("pit-123"),
            "{err}"
        );
        let err = profiles["b"].as_ref().unwrap_err();
        assert!(err.contains("writeback"), "{err}");
        let err = profiles["c"].as_ref().unwrap_err();
        assert!(err.contains("location or agency"), "{err}");
        assert!(
            profiles["d"].is_ok(),
            "one profile's mistakes never block another"
        );
        let (_d, path) = write("token = \"pit-secret-1\"\n[profiles.a]\nlocation = \"L\"\n");
        let err = load(&path).unwrap_err();
        assert!(
            !err.contains("pit-secret-1") && err.contains("line 1"),
            "{err}"
        );
    }
}
