//! Real mounts for tests: the `mediafs` binary mounting over an emulator
//! that runs as its own process, driven with real tools.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{LOCATION, TOKEN};

pub const BIN: &str = env!("CARGO_BIN_EXE_mediafs");

/// Runs a shell command line and returns its output.
pub fn sh(script: &str) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .output()
        .expect("bash runs")
}

/// Runs a shell command line that must succeed; returns its stdout.
pub fn ok(script: &str) -> String {
    let out = sh(script);
    assert!(
        out.status.success(),
        "`{script}` failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Quotes a path for a shell command line.
pub fn q(path: impl AsRef<Path>) -> String {
    format!(
        "'{}'",
        path.as_ref().display().to_string().replace('\'', "'\\''")
    )
}

/// An emulator process with its own data dir.
pub struct EmulatorProcess {
    child: Child,
    pub base_url: String,
    pub data_dir: tempfile::TempDir,
    listen: String,
}

impl EmulatorProcess {
    pub fn start(extra: &[&str]) -> EmulatorProcess {
        Self::start_in(tempfile::tempdir().unwrap(), "127.0.0.1:0", extra)
    }

    fn start_in(data_dir: tempfile::TempDir, listen: &str, extra: &[&str]) -> EmulatorProcess {
        let mut child = Command::new(BIN)
            .args([
                "emulator",
                "--listen",
                listen,
                "--token",
                TOKEN,
                "--location",
                LOCATION,
            ])
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the emulator starts");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        // Keep reading, so that the emulator never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let base_url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in the emulator's first line: {line:?}"))
            .to_owned();
        let listen = base_url.trim_start_matches("http://").to_owned();
        EmulatorProcess {
            child,
            base_url,
            data_dir,
            listen,
        }
    }

    /// Stops the emulator and starts it again on the same address and data.
    pub fn restart(mut self, extra: &[&str]) -> EmulatorProcess {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let data_dir = std::mem::replace(&mut self.data_dir, tempfile::tempdir().unwrap());
        let listen = self.listen.clone();
        Self::start_in(data_dir, &listen, extra)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sets the emulator's faults: those given, the others back to their
    /// defaults (the emulator itself keeps the fields a change leaves out).
    pub fn set_faults(&self, given: serde_json::Value) {
        let mut faults =
            serde_json::to_value(mediafs::emulator::Faults::default()).expect("faults serialize");
        for (key, value) in given.as_object().expect("faults are an object") {
            faults[key] = value.clone();
        }
        ok(&format!(
            "curl -sf -X POST -H 'Content-Type: application/json' -d {} {}/_emulator/faults",
            q(faults.to_string()),
            self.base_url
        ));
    }

    /// Every object the emulator holds for [`LOCATION`], whatever its
    /// status, from its own store (`/_emulator/objects`), never through
    /// the client under test.
    pub fn all_objects(&self) -> Vec<serde_json::Value> {
        let body: serde_json::Value = serde_json::from_str(&ok(&format!(
            "curl -sf '{}/_emulator/objects?location={LOCATION}'",
            self.base_url
        )))
        .unwrap();
        body["objects"].as_array().unwrap().clone()
    }

    /// The active ones among [`Self::all_objects`].
    pub fn active_objects(&self) -> Vec<mediafs::api::MediaObject> {
        super::active_objects(&self.all_objects())
    }

    pub fn stats(&self) -> serde_json::Value {
        serde_json::from_str(&ok(&format!("curl -sf {}/_emulator/stats", self.base_url))).unwrap()
    }

    pub fn reset_stats(&self) {
        ok(&format!(
            "curl -sf -X DELETE {}/_emulator/stats",
            self.base_url
        ));
    }

    /// A client of this emulator's API, and a runtime to drive it.
    pub fn client(&self) -> (tokio::runtime::Runtime, mediafs::api::MediaClient) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = super::client_for(&self.base_url, LOCATION, TOKEN, |c| c.rate_limit = None);
        (rt, client)
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A mounted `mediafs mount` process.
pub struct Mounted {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub cache_dir: PathBuf,
    log: PathBuf,
    _own_cache: Option<tempfile::TempDir>,
}

/// Whether `path` is a mountpoint in /proc/mounts.
pub fn is_mounted(path: &Path) -> bool {
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(path.to_str().unwrap()))
}

impl Mounted {
    /// Mounts with a 1-second metadata TTL and its own cache dir.
    pub fn start(emu: &EmulatorProcess, extra: &[&str]) -> Mounted {
        let cache = tempfile::tempdir().unwrap();
        let mut mounted = Self::start_with_cache(emu, cache.path(), extra);
        mounted._own_cache = Some(cache);
        mounted
    }

    pub fn start_with_cache(emu: &EmulatorProcess, cache_dir: &Path, extra: &[&str]) -> Mounted {
        Self::try_start(emu, cache_dir, TOKEN, extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Mounts, or says why the mount process gave up.
    pub fn try_start(
        emu: &EmulatorProcess,
        cache_dir: &Path,
        token: &str,
        extra: &[&str],
    ) -> Result<Mounted, String> {
        Self::try_start_in(tempfile::tempdir().unwrap(), emu, cache_dir, token, extra)
    }

    /// Mounts on a given mountpoint.
    pub fn try_start_in(
        dir: tempfile::TempDir,
        emu: &EmulatorProcess,
        cache_dir: &Path,
        token: &str,
        extra: &[&str],
    ) -> Result<Mounted, String> {
        Self::try_mount(dir, emu, cache_dir, token, &["--location", LOCATION], extra)
    }

    /// Mounts `target` (`--location ID`, or `--agency COMPANY ...`) with
    /// `token` in `MEDIAFS_TOKEN`.
    pub fn try_mount(
        dir: tempfile::TempDir,
        emu: &EmulatorProcess,
        cache_dir: &Path,
        token: &str,
        target: &[&str],
        extra: &[&str],
    ) -> Result<Mounted, String> {
        let log = dir.path().with_extension("log");
        // `RUST_LOG=...` among the arguments sets the mount's log filter.
        let log_filter = extra
            .iter()
            .find_map(|a| a.strip_prefix("RUST_LOG="))
            .unwrap_or("mediafs=debug")
            .to_owned();
        // `MEDIAFS_CONFIG=...` sets the profile file the mount reads.
        let config = extra
            .iter()
            .find_map(|a| a.strip_prefix("MEDIAFS_CONFIG="))
            .unwrap_or("/nonexistent/mediafs-config.toml")
            .to_owned();
        let extra: Vec<&str> = extra
            .iter()
            .copied()
            .filter(|a| !a.starts_with("RUST_LOG=") && !a.starts_with("MEDIAFS_CONFIG="))
            .collect();
        let mut child = Command::new(BIN)
            .arg("mount")
            .arg(dir.path())
            .args(target)
            .args(["--base-url", &emu.base_url])
            .args(if extra.contains(&"--metadata-ttl") {
                &[][..]
            } else {
                &["--metadata-ttl", "1"][..]
            })
            .arg("--cache-dir")
            .arg(cache_dir)
            .args(extra)
            .env("MEDIAFS_TOKEN", token)
            .env("RUST_LOG", log_filter)
            .env("MEDIAFS_CONFIG", config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("mediafs mount starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_mounted(dir.path()) {
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!(
                    "mediafs mount exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            assert!(
                Instant::now() < deadline,
                "the mount did not appear in time"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Mounted {
            child: Some(child),
            dir,
            cache_dir: cache_dir.to_path_buf(),
            log,
            _own_cache: None,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the mount, quoted for the shell.
    pub fn at(&self, rel: &str) -> String {
        q(self.dir.path().join(rel))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Unmounts with `fusermount3 -u` and waits for the process to end.
    pub fn unmount(mut self) -> std::process::ExitStatus {
        self.fusermount_and_wait()
    }

    fn fusermount_and_wait(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !sh(&format!("fusermount3 -u {}", q(self.dir.path())))
            .status
            .success()
        {
            assert!(Instant::now() < deadline, "cannot unmount: {}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        child.wait().unwrap()
    }

    /// Kills the mount process with SIGKILL; the dead mount stays in place
    /// (programs using it get errors) until [`Mounted::remount`].
    pub fn kill9(&mut self) {
        let child = self.child.as_mut().unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().unwrap();
    }

    /// Unmounts a killed mount with `fusermount3 -u` and mounts again on
    /// the same mountpoint with the same cache dir.
    pub fn remount(mut self, emu: &EmulatorProcess, extra: &[&str]) -> Mounted {
        self.child.take();
        ok(&format!("fusermount3 -u {}", q(self.dir.path())));
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        let cache = self.cache_dir.clone();
        let mut again =
            Self::try_start_in(dir, emu, &cache, TOKEN, extra).unwrap_or_else(|e| panic!("{e}"));
        again._own_cache = self._own_cache.take();
        again
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// Unmounts with `fusermount3 -u`, waits for the process, and mounts
    /// again on the same mountpoint with the same cache dir; also returns
    /// the first mount's log.
    pub fn remount_clean(mut self, emu: &EmulatorProcess, extra: &[&str]) -> (Mounted, String) {
        self.fusermount_and_wait();
        let log = self.log();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        let cache = self.cache_dir.clone();
        let mut again =
            Self::try_start_in(dir, emu, &cache, TOKEN, extra).unwrap_or_else(|e| panic!("{e}"));
        again._own_cache = self._own_cache.take();
        (again, log)
    }

    /// Sends a signal to the mount process.
    pub fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("the mount process runs");
        unsafe { libc::kill(child.id() as i32, signal) };
    }

    /// Whether the mount process still runs.
    pub fn running(&mut self) -> bool {
        let child = self.child.as_mut().expect("the mount process was started");
        child.try_wait().unwrap().is_none()
    }

    /// Waits up to `limit` for the mount process to exit, and gives its status.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            let child = self.child.as_mut().expect("the mount process was started");
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the mount process did not exit within {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asks the mount process to stop (SIGTERM) and waits for it.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        assert!(!is_mounted(self.dir.path()), "SIGTERM unmounted it");
        status
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = sh(&format!("fusermount3 -uz {}", q(self.dir.path())));
            let _ = child.kill();
            let _ = child.wait();
        } else if is_mounted(self.dir.path()) {
            // A process that exited and left its mount behind.
            let _ = sh(&format!("fusermount3 -uz {}", q(self.dir.path())));
        }
    }
}
