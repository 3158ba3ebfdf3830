//! The platform operator token: generated at first start, kept in a file (mode 0600; for
//! `stratus dev` `<data-dir>/admin-token`, for `stratus control-plane` `--admin-token-file`), read
//! back at every later start.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::Error;
use crate::secret::{ADMIN_TOKEN_PREFIX, Secret};

/// The file name of the token inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// The operator token stored in `data_dir` (created, with the directory, when missing).
///
/// The file holds the token and a newline, and is readable by its owner only; an existing file
/// with wider permissions is narrowed to 0600. This does blocking file I/O: call it at start-up,
/// before serving.
pub fn ensure_admin_token(data_dir: &Path) -> Result<String, Error> {
    fs::create_dir_all(data_dir).map_err(|source| Error::AdminToken {
        path: data_dir.join(ADMIN_TOKEN_FILE),
        source,
    })?;
    ensure_admin_token_file(&data_dir.join(ADMIN_TOKEN_FILE))
}

/// The operator token stored in the file at `path`, generated and written (mode 0600) when the
/// file is missing; its directory must exist. Same format and checks as [`ensure_admin_token`]
/// (blocking file I/O: call it at start-up).
pub fn ensure_admin_token_file(path: &Path) -> Result<String, Error> {
    let path = path.to_path_buf();
    let io_error = |source: io::Error| Error::AdminToken {
        path: path.clone(),
        source,
    };
    match fs::read_to_string(&path) {
        Ok(text) => {
            restrict_permissions(&path).map_err(io_error)?;
            let token = text.trim();
            if token.len() < 16 || token.chars().any(|c| !c.is_ascii_graphic()) {
                return Err(Error::AdminTokenMalformed { path });
            }
            Ok(token.to_owned())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let secret = Secret::generate(ADMIN_TOKEN_PREFIX).map_err(Error::Random)?;
            let mut file = create_private(&path).map_err(io_error)?;
            writeln!(file, "{}", secret.expose()).map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
            Ok(secret.expose().to_owned())
        }
        Err(e) => Err(io_error(e)),
    }
}

#[cfg(unix)]
fn create_private(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_created_once_private_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let first = ensure_admin_token(&data_dir).unwrap();
        assert!(first.starts_with(ADMIN_TOKEN_PREFIX));
        let second = ensure_admin_token(&data_dir).unwrap();
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(data_dir.join(ADMIN_TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_readable_token_file_is_narrowed_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ADMIN_TOKEN_FILE);
        fs::write(&path, "an-operator-token-1234\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            ensure_admin_token(dir.path()).unwrap(),
            "an-operator-token-1234"
        );
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_token_file_anywhere_is_created_once_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("operator.token");
        let first = ensure_admin_token_file(&path).unwrap();
        assert!(first.starts_with(ADMIN_TOKEN_PREFIX));
        assert_eq!(ensure_admin_token_file(&path).unwrap(), first);
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{first}\n"));
    }

    #[test]
    fn an_empty_token_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(ADMIN_TOKEN_FILE), "\n").unwrap();
        assert!(matches!(
            ensure_admin_token(dir.path()),
            Err(Error::AdminTokenMalformed { .. })
        ));
    }
}
