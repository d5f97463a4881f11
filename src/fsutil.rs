//! File helpers every component shares: atomic writes (temp file in the same directory,
//! fsync, rename, fsync the directory) and lexical path normalisation.

use std::ffi::{CString, OsStr};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// A user and group to give a written file and the directories created for it (root writing
/// into a user's directory, `sudo openclawd install --system`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// Replaces `path` with `bytes` atomically: a crash at any point leaves the old file or the
/// new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, bytes, 0o644)
}

/// [`write_atomic`] with the file's mode set from its first byte (0600 for secrets).
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_owned(path, bytes, mode, None)
}

/// [`write_atomic_mode`], never by path: the directory is opened once and everything else
/// happens relative to that descriptor. The temp file is created
/// new (`O_EXCL | O_NOFOLLOW`: a file or symlink planted at its name is never opened), its
/// owner and mode are set on the open descriptor, and it is renamed within the directory.
/// With `owner`, the directory (and any created for it) must belong to that user: root never
/// writes into a directory of someone else's.
pub fn write_atomic_owned(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<Owner>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    let dir_fd = match owner {
        Some(owner) => create_dir_all_owned(dir, owner)?,
        None => {
            fs::create_dir_all(dir)?;
            open_dir(dir)?
        }
    };
    if let Some(owner) = owner {
        let meta = dir_fd.metadata()?;
        if meta.uid() != owner.uid {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} belongs to uid {}, not to uid {}; not writing into it",
                    dir.display(),
                    meta.uid(),
                    owner.uid
                ),
            ));
        }
    }
    let (tmp_name, mut file) = create_temp(&dir_fd, name, mode)?;
    let result = (|| {
        if let Some(owner) = owner {
            std::os::unix::fs::fchown(&file, Some(owner.uid), Some(owner.gid))?;
        }
        // umask narrowed the creation mode: set it on the descriptor.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        rename_at(&dir_fd, &tmp_name, &cstr(name)?)?;
        dir_fd.sync_all()
    })();
    if result.is_err() {
        let _ = unlink_at(&dir_fd, &tmp_name);
    }
    result
}

fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))
}

/// Opens a directory once; everything written into it goes through this descriptor. A
/// symlinked directory is followed (dotfile managers link `~/.config/...`); with an owner, the
/// directory reached must be that user's.
fn open_dir(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
}

fn open_dir_at(parent: &File, name: &CString) -> io::Result<File> {
    // SAFETY: valid dir fd and NUL-terminated name; a non-negative result is a new fd we own.
    let fd = unsafe {
        libc::openat(
            parent.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// `create_dir_all`, where each directory created is made relative to its parent's descriptor
/// (never by path) and handed to `owner` through its own descriptor. Returns the last one open.
pub fn create_dir_all_owned(dir: &Path, owner: Owner) -> io::Result<File> {
    // The deepest existing ancestor is the user's own choice (their home may be a symlink);
    // what is created below it is ours to create safely.
    let mut missing = Vec::new();
    let mut existing = dir;
    while !existing.as_os_str().is_empty() && fs::symlink_metadata(existing).is_err() {
        missing.push(existing.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot create {}", dir.display()),
            )
        })?);
        existing = existing.parent().unwrap_or(Path::new(""));
    }
    let mut fd = open_dir(if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        existing
    })?;
    for name in missing.into_iter().rev() {
        let name = cstr(name)?;
        // SAFETY: valid dir fd and NUL-terminated name.
        if unsafe { libc::mkdirat(fd.as_raw_fd(), name.as_ptr(), 0o700) } != 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::AlreadyExists {
                return Err(err);
            }
        }
        let child = open_dir_at(&fd, &name)?;
        std::os::unix::fs::fchown(&child, Some(owner.uid), Some(owner.gid))?;
        fd = child;
    }
    Ok(fd)
}

/// A new temp file next to `name` in `dir`: `O_CREAT | O_EXCL | O_NOFOLLOW`, so whatever is
/// already at a candidate name (a leftover, a planted file or symlink) is never opened — the
/// next name is tried instead. The names are predictable on purpose: safety comes from
/// `O_EXCL`, not from guessing.
fn create_temp(dir: &File, name: &OsStr, mode: u32) -> io::Result<(CString, File)> {
    let mut last = None;
    for n in 0..TEMP_TRIES {
        let tmp = cstr(&temp_name(name, n))?;
        // SAFETY: valid dir fd and NUL-terminated name; a non-negative result is ours.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                tmp.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                (mode & 0o777) as libc::c_uint,
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel just returned this fd.
            return Ok((tmp, unsafe { File::from_raw_fd(fd) }));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::AlreadyExists {
            return Err(err);
        }
        last = Some(err);
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temp name")))
}

const TEMP_TRIES: u32 = 16;

/// The `n`th temp name this process tries for `name`.
fn temp_name(name: &OsStr, n: u32) -> std::ffi::OsString {
    format!(".{}.tmp-{}-{n}", name.to_string_lossy(), std::process::id()).into()
}

fn rename_at(dir: &File, from: &CString, to: &CString) -> io::Result<()> {
    // SAFETY: valid dir fd, NUL-terminated names.
    let rc =
        unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn unlink_at(dir: &File, name: &CString) -> io::Result<()> {
    // SAFETY: valid dir fd, NUL-terminated name.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Why `dir` may not be trusted for lock files: it must be a real directory (not a symlink)
/// owned by our effective uid and writable by nobody else. `Ok(())` when it may.
pub fn check_private_dir(dir: &Path) -> Result<(), String> {
    let meta = fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    if meta.uid() != me {
        return Err(format!(
            "{} belongs to uid {}, not to us (uid {me})",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is writable by other users (mode {:04o})",
            dir.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Reads a small regular file without following a symlink and without blocking on a FIFO
/// or device (`O_NOFOLLOW | O_NONBLOCK`, then only a regular file is read), up to `limit`
/// bytes.
pub fn read_regular_file(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", path.display()),
        ));
    }
    let mut out = Vec::new();
    file.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

/// Lexical normalisation (`.` dropped, `..` folded), so paths compare equal to the ones
/// notify reports without touching the file system.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_the_file_with_the_mode_asked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret.env");
        write_atomic_mode(&p, b"A=1\n", 0o600).unwrap();
        write_atomic_mode(&p, b"A=2\n", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "A=2\n");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn a_symlink_or_file_planted_at_a_temp_name_is_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        // Plant symlinks under every name the old writer used and a few random-looking ones.
        let p = dir.path().join("state.json");
        std::os::unix::fs::symlink(
            &victim,
            dir.path()
                .join(format!(".state.json.tmp-{}", std::process::id())),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            &victim,
            dir.path().join(temp_name(OsStr::new("state.json"), 0)),
        )
        .unwrap();
        write_atomic_mode(&p, b"new", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            4,
            "victim, two planted links, state.json: no temp file left"
        );
    }

    #[test]
    fn an_owned_write_goes_only_into_that_users_directory() {
        let dir = tempfile::tempdir().unwrap();
        let me = Owner {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        };
        // Missing directories are created (mode 0700) and the file lands with its mode.
        let p = dir.path().join("a/b/openclawd.env");
        write_atomic_owned(&p, b"K=v\n", 0o600, Some(me)).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "K=v\n");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            fs::metadata(p.parent().unwrap()).unwrap().mode() & 0o777,
            0o700
        );
        // A directory of another user is refused.
        let other = Owner {
            uid: me.uid + 1,
            gid: me.gid,
        };
        let err =
            write_atomic_owned(&dir.path().join("a/b/x"), b"no", 0o600, Some(other)).unwrap_err();
        assert!(err.to_string().contains("not writing into it"), "{err}");
        assert!(!dir.path().join("a/b/x").exists());
    }

    /// Root writing a user's private file (`sudo openclawd install --system`): a symlink the
    /// user planted at the temp name is not followed, and the file ends up the user's.
    #[test]
    fn root_writing_into_a_users_directory_follows_no_planted_symlink() {
        if !nix::unistd::geteuid().is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root: this test must run there"
            );
            eprintln!("not root: cannot act as root writing for another user");
            return;
        }
        let user = Owner {
            uid: 65534,
            gid: 65534,
        };
        let top = tempfile::tempdir().unwrap();
        let victim = top.path().join("victim");
        fs::write(&victim, "root's").unwrap();
        let dir = top.path().join("state");
        fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid)).unwrap();
        let target = dir.join("service.env");
        for n in 0..3 {
            std::os::unix::fs::symlink(&victim, dir.join(temp_name(OsStr::new("service.env"), n)))
                .unwrap();
        }
        // What the old writer used.
        std::os::unix::fs::symlink(
            &victim,
            dir.join(format!(".service.env.tmp-{}", std::process::id())),
        )
        .unwrap();
        write_atomic_owned(&target, b"KEY=1\n", 0o600, Some(user)).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "root's");
        let vm = fs::symlink_metadata(&victim).unwrap();
        assert_eq!(
            (vm.uid(), vm.mode() & 0o777),
            (0, 0o644),
            "victim untouched"
        );
        let tm = fs::symlink_metadata(&target).unwrap();
        assert!(tm.is_file());
        assert_eq!(
            (tm.uid(), tm.gid(), tm.mode() & 0o777),
            (65534, 65534, 0o600)
        );
        assert_eq!(fs::read_to_string(&target).unwrap(), "KEY=1\n");
    }

    #[test]
    fn lock_dirs_must_be_ours_and_private_and_fifos_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("openclaw-1");
        fs::create_dir(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(check_private_dir(&d), Ok(()));
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(check_private_dir(&d)
            .unwrap_err()
            .contains("writable by other users"));
        let fifo = d.join("gateway.x.lock");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = read_regular_file(&fifo, 1024).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let link = d.join("gateway.y.lock");
        std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
        assert!(read_regular_file(&link, 1024).is_err());
    }

    #[test]
    fn normalize_folds_dots() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("../x")), PathBuf::from("../x"));
    }
}
