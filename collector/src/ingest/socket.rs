//! Binding the Unix socket: replace a stale socket file, refuse a live one, restrict
//! permissions.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context as _};
use tracing::info;

/// Binds `path` with permissions `mode`. The directory is created if missing (mode
/// 0700 for the default per-user directory).
pub(crate) fn bind(path: &Path, mode: u32) -> anyhow::Result<(tokio::net::UnixListener, u64)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if dir == logbook_proto::paths::default_socket_dir() {
            logbook_proto::paths::ensure_private_dir(dir)?;
        } else {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating socket directory {}", dir.display()))?;
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            bail!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            )
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => bail!(
                "another collector is already listening on {}",
                path.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path)
                    .with_context(|| format!("removing stale socket {}", path.display()))?;
                info!(path = %path.display(), "Replaced a stale socket file.");
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("checking existing socket {}", path.display()))
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting permissions of {}", path.display()))?;
    listener.set_nonblocking(true)?;
    let inode = std::fs::metadata(path)?.ino();
    Ok((tokio::net::UnixListener::from_std(listener)?, inode))
}

/// Removes the socket file if it is still the one this process bound.
pub(crate) fn remove_if_ours(path: &Path, inode: u64) {
    if std::fs::metadata(path).is_ok_and(|m| m.ino() == inode) {
        let _ = std::fs::remove_file(path);
    }
}
