//! Binding the Unix socket: replace a stale socket file, refuse a live one, restrict
//! permissions.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context as _};
use tracing::info;

/// Binds `path` with permissions `mode`. The directory is created if missing (mode
/// 0700 for the default per-user directory).
pub(super) fn bind(path: &Path, mode: u32) -> anyhow::Result<(tokio::net::UnixListener, u64)> {
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
    let listener = bind_with_mode(path, mode)?;
    listener.set_nonblocking(true)?;
    let inode = std::fs::metadata(path)?.ino();
    Ok((tokio::net::UnixListener::from_std(listener)?, inode))
}

/// Binds in a private staging directory, sets the mode, then links the socket into
/// place: no other user can connect in between, and an existing file is never
/// replaced (linking fails if the path exists).
fn bind_with_mode(path: &Path, mode: u32) -> anyhow::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = dir.join(format!(".logbook-bind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .with_context(|| format!("creating {}", staging.display()))?;
    let staged = staging.join("s");
    let result = (|| {
        let listener = std::os::unix::net::UnixListener::bind(&staged)
            .with_context(|| format!("binding {}", path.display()))?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting permissions of {}", path.display()))?;
        std::fs::hard_link(&staged, path).with_context(|| format!("binding {}", path.display()))?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// Removes the socket file if it is still the one this process bound.
pub(super) fn remove_if_ours(path: &Path, inode: u64) {
    if std::fs::metadata(path).is_ok_and(|m| m.ino() == inode) {
        let _ = std::fs::remove_file(path);
    }
}
