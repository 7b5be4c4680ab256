//! Owner and permissions of member devices (chown, chmod).

use crate::error::{Error, Result};
use std::path::Path;

/// Give `path` to `uid`:`gid` with permission bits `mode` (masked to 0o7777).
pub(crate) fn apply_ownership(path: &Path, uid: u32, gid: u32, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| Error::file(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| Error::file(path, e))
}
