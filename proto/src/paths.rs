//! Default locations, so that a layer and a collector started without options meet.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// File name of the collector's socket inside the socket directory.
pub const SOCKET_FILE_NAME: &str = "logbook.sock";

/// The directory holding the default socket: `$XDG_RUNTIME_DIR` when set, else
/// `<temp dir>/logbook-<uid>`, a per-user directory (see [`ensure_private_dir`]).
pub fn default_socket_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() && Path::new(&d).is_absolute() => PathBuf::from(d),
        _ => std::env::temp_dir().join(format!("logbook-{}", current_uid())),
    }
}

/// The default socket path: `$XDG_RUNTIME_DIR/logbook.sock`, else
/// `<temp dir>/logbook-<uid>/logbook.sock`.
pub fn default_socket_path() -> PathBuf {
    default_socket_dir().join(SOCKET_FILE_NAME)
}

/// Creates `dir` with mode 0700 if missing. If it exists it must be a directory owned
/// by the current user with no group or other permissions, otherwise another local
/// user could intercept the socket; such a directory is refused, not repaired.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    let refuse = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("refusing socket directory {}: {why}", dir.display()),
        ))
    };
    if !meta.is_dir() {
        return refuse("not a directory");
    }
    if meta.uid() != current_uid() {
        return refuse("owned by another user");
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return refuse("accessible to group or others (want mode 0700)");
    }
    Ok(())
}

/// The real user id of this process.
#[allow(unsafe_code)]
pub fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_and_accepts_private_dir() {
        let base = std::env::temp_dir().join(format!("logbook-proto-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let d = base.join("sock");
        ensure_private_dir(&d).unwrap();
        assert_eq!(
            std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        ensure_private_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = ensure_private_dir(&d).unwrap_err();
        assert!(err.to_string().contains("group or others"), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn default_path_ends_with_socket_name() {
        assert!(default_socket_path().ends_with(SOCKET_FILE_NAME));
    }
}
