//! Everyday tools through a real mount: editors and scripts that save
//! through a temp name, editors' swap files, names with control characters,
//! and the shell's redirections. The server's state is read from the
//! emulator's own record of every object (trashed ones too), not through
//! the client under test.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::mount::*;
use serde_json::Value;

fn emulator() -> EmulatorProcess {
    EmulatorProcess::start(&["--rate-limit", "0"])
}

/// Every object the emulator holds, whatever its status.
fn server_objects(emu: &EmulatorProcess) -> Vec<Value> {
    emu.all_objects()
}

fn active_files(emu: &EmulatorProcess) -> Vec<Value> {
    server_objects(emu)
        .into_iter()
        .filter(|o| o["status"] == "active" && o["type"] == "file")
        .collect()
}

/// The bytes of the one active file named `name` on the server.
fn server_bytes(emu: &EmulatorProcess, name: &str) -> Vec<u8> {
    let files: Vec<Value> = active_files(emu)
        .into_iter()
        .filter(|o| o["name"] == name)
        .collect();
    assert_eq!(files.len(), 1, "one {name:?} on the server: {files:?}");
    let url = files[0]["url"].as_str().unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sf", url])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

fn names_on_server(emu: &EmulatorProcess) -> Vec<String> {
    server_objects(emu)
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_owned())
        .collect()
}

/// What `ls -A` shows in a directory of the mount.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Drops the kernel's dentries and inodes, as memory pressure does.
fn kernel_forgets() {
    if unsafe { libc::geteuid() } == 0 {
        ok("sync; echo 2 > /proc/sys/vm/drop_caches");
    }
}

#[test]
fn sed_perl_and_python_save_through_temp_names() {
    saves_through_temp_names(&[]);
}

#[test]
fn saves_through_temp_names_with_write_back() {
    saves_through_temp_names(&["--write-back"]);
}

/// With write-back the rename spools the file; `fsync` on the target then
/// waits for its upload, so the server can be looked at.
fn saves_through_temp_names(mode: &[&str]) {
    let emu = emulator();
    let m = Mounted::start(&emu, mode);
    let notes = m.path().join("notes.txt");
    std::fs::write(&notes, "a b c\n").unwrap();

    let synced = |path: &Path| ok(&format!("sync {}", q(path)));
    ok(&format!("sed -i s/b/B/ {}", q(&notes)));
    synced(&notes);
    assert_eq!(server_bytes(&emu, "notes.txt"), b"a B c\n");
    ok(&format!("perl -pi -e s/c/C/ {}", q(&notes)));
    synced(&notes);
    assert_eq!(server_bytes(&emu, "notes.txt"), b"a B C\n");
    // The pattern of careful programs: a temp file, fsync, then replace.
    let script = r#"
import os, sys, tempfile
target = sys.argv[1]
with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(target), delete=False) as f:
    f.write("x y z\n")
    f.flush()
    os.fsync(f.fileno())
os.replace(f.name, target)
"#;
    ok(&format!("python3 -c {} {}", q(script), q(&notes)));
    synced(&notes);
    assert_eq!(server_bytes(&emu, "notes.txt"), b"x y z\n");
    // Also while the temp file is still open, as some programs do.
    let script = r#"
import os, sys, tempfile
target = sys.argv[1]
f = tempfile.NamedTemporaryFile("w", dir=os.path.dirname(target), delete=False)
f.write("still open\n")
f.flush()
os.replace(f.name, target)
f.close()
"#;
    ok(&format!("python3 -c {} {}", q(script), q(&notes)));
    synced(&notes);
    assert_eq!(server_bytes(&emu, "notes.txt"), b"still open\n");

    // gedit and other GLib programs save with g_file_replace, through a
    // `.goutputstream-XXXXXX` temp file: `gio save` does the same.
    ok(&format!("printf 'via gio\\n' | gio save {}", q(&notes)));
    synced(&notes);
    assert_eq!(server_bytes(&emu, "notes.txt"), b"via gio\n");

    assert_eq!(listing(m.path()), ["notes.txt"], "no temp file left");
    let active: Vec<Value> = active_files(&emu);
    assert_eq!(active.len(), 1, "only notes.txt is stored: {active:?}");
    assert_eq!(active[0]["contentType"], "text/plain");
    assert!(!m.log().contains("refuses"), "{}", m.log());
}

#[test]
fn vim_saves_and_its_swap_files_stay_local() {
    let emu = emulator();
    let m = Mounted::start(&emu, &[]);
    let notes = m.path().join("notes.txt");
    std::fs::write(&notes, "a b c\n").unwrap();
    let seen = tempfile::NamedTempFile::new().unwrap();
    for (backupcopy, from, to) in [("no", "b", "B"), ("yes", "c", "C")] {
        // `:!ls` runs while vim has its swap file and the edit unsaved.
        // `backupskip=`: the mount is under /tmp, where vim makes no backup.
        let vim = format!(
            "vim -u NONE -N -i NONE -es -c 'set backupcopy={backupcopy} writebackup backupskip=' \
             -c 's/{from}/{to}/' -c 'silent !ls -A {dir} > {seen}' -c 'wq' {file} </dev/null",
            dir = q(m.path()),
            seen = q(seen.path()),
            file = q(&notes),
        );
        ok(&vim);
        let during = std::fs::read_to_string(seen.path()).unwrap();
        assert!(
            during.lines().any(|l| l == ".notes.txt.swp"),
            "vim kept its swap next to the file: {during}"
        );
    }
    assert_eq!(server_bytes(&emu, "notes.txt"), b"a B C\n");
    // The swap and vim's probe never reached the server, under any status;
    // with backupcopy=no the original was renamed to the backup, then
    // trashed once the new file was stored.
    assert_eq!(listing(m.path()), ["notes.txt"]);
    let names = names_on_server(&emu);
    for junk in [".notes.txt.swp", "4913"] {
        assert!(
            !names.iter().any(|n| n == junk),
            "{junk} on the server: {names:?}"
        );
    }
    assert!(
        names.iter().any(|n| n == "notes.txt~"),
        "the backup was made: {names:?}"
    );
    let active: Vec<Value> = active_files(&emu);
    assert_eq!(active.len(), 1, "{active:?}");
}

/// A stored file whose name tells no type (uploaded from the web app as
/// text): editors and `sed -i` save it through names that tell none either,
/// and it keeps its type. A rename to a final name that tells none, with
/// nothing to take a type from, is refused.
#[test]
fn names_without_an_extension() {
    let emu = emulator();
    let (rt, client) = emu.client();
    let src = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(src.path(), "a b c\n").unwrap();
    rt.block_on(client.upload_file_as(src.path(), "README", None, Some("text/plain")))
        .unwrap();
    let m = Mounted::start(&emu, &[]);
    let readme = m.path().join("README");
    ok(&format!("sed -i s/b/B/ {}", q(&readme)));
    assert_eq!(server_bytes(&emu, "README"), b"a B c\n");
    let vim = format!(
        "vim -u NONE -N -i NONE -es -c 'set backupcopy=no writebackup backupskip=' \
         -c 's/c/C/' -c 'wq' {} </dev/null",
        q(&readme)
    );
    ok(&vim);
    assert_eq!(server_bytes(&emu, "README"), b"a B C\n");
    let active = active_files(&emu);
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0]["contentType"], "text/plain");

    // rsync's temp name becomes a final name that tells no type.
    ok(&format!("printf 'MIT' > {}", m.at(".LICENSE.Xa91f")));
    // (mv words the EINVAL as "to a subdirectory of itself"; the log says why.)
    let out = sh(&format!(
        "mv {} {}",
        m.at(".LICENSE.Xa91f"),
        m.at("LICENSE")
    ));
    assert!(!out.status.success(), "{out:?}");
    assert!(m.log().contains("cannot tell the type of \"LICENSE\""));
    assert_eq!(listing(m.path()), [".LICENSE.Xa91f", "README"]);
}

#[test]
fn names_with_control_characters() {
    let emu = emulator();
    let m = Mounted::start(&emu, &[]);
    for name in ["a\nb.txt", "tab\there.txt", "cr\r.txt"] {
        ok(&format!("echo hi > {}", m.at(name)));
        assert_eq!(server_bytes(&emu, name), b"hi\n", "{name:?}");
        assert_eq!(std::fs::read(m.path().join(name)).unwrap(), b"hi\n");
    }
    kernel_forgets();
    assert_eq!(listing(m.path()), ["a\nb.txt", "cr\r.txt", "tab\there.txt"]);
}

#[test]
fn a_file_without_a_type_waits_for_its_name() {
    let emu = emulator();
    let mut m = Mounted::start(&emu, &[]);
    // Plain text with no extension: nothing tells its type yet.
    ok(&format!("printf 'plain words' > {}", m.at("draft")));
    assert!(active_files(&emu).is_empty(), "not uploaded at close");
    kernel_forgets();
    assert_eq!(
        std::fs::read(m.path().join("draft")).unwrap(),
        b"plain words"
    );
    ok(&format!("mv {} {}", m.at("draft"), m.at("draft.txt")));
    assert_eq!(server_bytes(&emu, "draft.txt"), b"plain words");

    // A name that says a type the library refuses is refused at once.
    let out = sh(&format!(
        "printf 'x' > /tmp/$$.bin && cp /tmp/$$.bin {}; s=$?; rm /tmp/$$.bin; exit $s",
        m.at("blob.bin")
    ));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Invalid argument"),
        "{out:?}"
    );

    // One never renamed is kept in the cache dir at unmount, and said so.
    ok(&format!("printf 'forgotten' > {}", m.at("forgotten")));
    let cache = m.cache_dir().to_path_buf();
    let (again, log) = m.remount_clean(&emu, &[]);
    m = again;
    assert_eq!(
        std::fs::read(cache.join("unstored/forgotten")).unwrap(),
        b"forgotten"
    );
    assert!(log.contains("\"forgotten\" in / was never stored"), "{log}");

    // So is one whose mount crashed.
    ok(&format!("printf 'crashed' > {}", m.at("lost")));
    m.kill9();
    let m = m.remount(&emu, &[]);
    assert_eq!(
        std::fs::read(cache.join("unstored/lost")).unwrap(),
        b"crashed"
    );
    assert!(!m.path().join("lost").exists());
    let stored: Vec<String> = active_files(&emu)
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stored, ["draft.txt"]);
}

#[test]
fn redirections_into_a_stored_file() {
    let emu = emulator();
    let m = Mounted::start(&emu, &[]);
    ok(&format!("echo one > {}", m.at("notes.txt")));
    ok(&format!("echo two > {}", m.at("notes.txt")));
    assert_eq!(server_bytes(&emu, "notes.txt"), b"two\n");
    assert!(
        !m.log().contains("emptied"),
        "no warning for the shell's first flush: {}",
        m.log()
    );
    // Emptying it cannot be stored: the log says so once the file is
    // closed, and the server keeps the content.
    let _ = sh(&format!(": > {}", m.at("notes.txt")));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !m.log().contains("\"notes.txt\" was emptied") {
        assert!(Instant::now() < deadline, "{}", m.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(server_bytes(&emu, "notes.txt"), b"two\n");
}

#[test]
fn move_to_trash_sends_objects_to_the_library_trash() {
    let emu = emulator();
    // Even where `rm` deletes for good, Move to Trash trashes.
    let m = Mounted::start(&emu, &["--delete-mode", "delete"]);
    ok(&format!("mkdir {}", m.at("Kit")));
    ok(&format!("echo logo > {}", m.at("Kit/notes.txt")));
    ok(&format!("echo hi > {}", m.at("hello.txt")));
    ok(&format!("printf 'no type' > {}", m.at("scratch")));
    kernel_forgets();
    for name in ["hello.txt", "Kit", "scratch"] {
        ok(&format!("gio trash {}", m.at(name)));
    }
    let status_of = |name: &str| {
        server_objects(&emu)
            .into_iter()
            .find(|o| o["name"] == name)
            .map(|o| o["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status_of("hello.txt").as_deref(), Some("trashed"));
    assert_eq!(status_of("Kit").as_deref(), Some("trashed"));
    assert_eq!(status_of("scratch"), None, "never stored");
    // A folder holding, at any depth, a file not stored yet stays.
    ok(&format!("mkdir -p {}", m.at("Busy/Sub")));
    ok(&format!("printf 'draft' > {}", m.at("Busy/Sub/draft")));
    assert!(!sh(&format!("gio trash {}", m.at("Busy"))).status.success());
    assert_eq!(status_of("Busy").as_deref(), Some("active"));
    ok(&format!("rm -r {}", m.at("Busy")));
    let trash = m
        .path()
        .join(format!(".Trash-{}", unsafe { libc::geteuid() }));
    // What only this mount held is in its own trash; the rest is not.
    assert_eq!(listing(&trash.join("files")), ["scratch"]);
    assert_eq!(listing(&trash.join("info")), ["scratch.trashinfo"]);
    assert_eq!(
        listing(m.path()),
        [trash.file_name().unwrap().to_str().unwrap()]
    );
}
