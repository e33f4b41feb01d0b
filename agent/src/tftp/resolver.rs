//! Where file contents come from: the resolver hook and the default one, the boot root on disk.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use super::packet::ErrorCode;
use super::path::RequestPath;

/// A boxed future, so that [`Resolver`] stays usable as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The bytes a transfer serves. Files are read in chunks as the transfer
/// goes, never whole; generated content is small and lives in memory.
#[derive(Debug, Clone)]
pub enum FileSource {
    /// An open regular file and its size when opened.
    File {
        /// The open file, shared with the blocking reader.
        file: Arc<std::fs::File>,
        /// Its size in bytes, answered to `tsize`.
        size: u64,
    },
    /// Generated content, e.g. a per-machine iPXE script.
    Memory(Arc<[u8]>),
}

impl FileSource {
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            FileSource::File { size, .. } => *size,
            FileSource::Memory(bytes) => bytes.len() as u64,
        }
    }
}

/// Why a file cannot be served; each maps to one TFTP error code.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No such file (or not a regular file).
    #[error("{file}: no such file")]
    NotFound {
        /// The requested path.
        file: String,
    },
    /// The name resolves outside the root, or the OS denies access.
    #[error("{file}: access denied: {reason}")]
    Denied {
        /// The requested path.
        file: String,
        /// Why, for the log.
        reason: &'static str,
    },
    /// Any other failure to open.
    #[error("{file}: cannot open")]
    Io {
        /// The requested path.
        file: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl ResolveError {
    /// The TFTP error code and the message sent to the client. Messages name
    /// no server paths.
    pub fn reply(&self) -> (ErrorCode, &'static str) {
        match self {
            ResolveError::NotFound { .. } => (ErrorCode::FileNotFound, "File not found"),
            ResolveError::Denied { .. } => (ErrorCode::AccessViolation, "Access violation"),
            ResolveError::Io { .. } => (ErrorCode::NotDefined, "Cannot open file"),
        }
    }
}

/// The hook for file contents. The agent can put a resolver in front of
/// [`RootResolver`] that answers some names per machine (by `peer`) with
/// generated content and passes the rest on.
pub trait Resolver: Send + Sync + 'static {
    /// Finds the content for `path`, already confined by [`super::path::sanitize`].
    fn resolve<'a>(
        &'a self,
        peer: SocketAddr,
        path: &'a RequestPath,
    ) -> BoxFuture<'a, Result<FileSource, ResolveError>>;
}

/// Serves files under one directory, following symlinks only while they
/// stay inside it.
#[derive(Debug, Clone)]
pub struct RootResolver {
    root: PathBuf,
}

impl RootResolver {
    /// Canonicalises `root` once, so that containment compares like with like.
    pub fn new(root: &Path) -> io::Result<RootResolver> {
        Ok(RootResolver {
            root: std::fs::canonicalize(root)?,
        })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Blocking resolution; [`Resolver::resolve`] runs it off the runtime.
    pub fn open(&self, path: &RequestPath) -> Result<FileSource, ResolveError> {
        let file = path.to_string();
        let joined = self.root.join(path.to_relative());
        let real = match std::fs::canonicalize(&joined) {
            Ok(real) => real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ResolveError::NotFound { file });
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(ResolveError::Denied {
                    file,
                    reason: "permission denied",
                });
            }
            Err(source) => return Err(ResolveError::Io { file, source }),
        };
        // Path::starts_with compares whole components, so a sibling named
        // `<root>-other` does not pass as inside `<root>`.
        if !real.starts_with(&self.root) {
            return Err(ResolveError::Denied {
                file,
                reason: "symlink leads outside the root",
            });
        }
        // TODO-correctness(#4): a directory on the path swapped for a
        // symlink between canonicalize and open is followed;
        // openat2(RESOLVE_BENEATH) would close that window on Linux >= 5.6.
        // O_NONBLOCK: opening a FIFO someone left in the root would
        // otherwise block until a writer appears, holding the slot forever;
        // it changes nothing for regular files. O_NOFOLLOW narrows the
        // swap window below to the directories above the file.
        let opened = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW)
            .open(&real)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(ResolveError::Denied {
                    file,
                    reason: "permission denied",
                });
            }
            Err(source) => return Err(ResolveError::Io { file, source }),
        };
        let meta = opened.metadata().map_err(|source| ResolveError::Io {
            file: file.clone(),
            source,
        })?;
        if !meta.is_file() {
            return Err(ResolveError::NotFound { file });
        }
        Ok(FileSource::File {
            file: Arc::new(opened),
            size: meta.len(),
        })
    }
}

impl Resolver for RootResolver {
    fn resolve<'a>(
        &'a self,
        _peer: SocketAddr,
        path: &'a RequestPath,
    ) -> BoxFuture<'a, Result<FileSource, ResolveError>> {
        let this = self.clone();
        let path = path.clone();
        Box::pin(async move {
            let file = path.to_string();
            tokio::task::spawn_blocking(move || this.open(&path))
                .await
                .unwrap_or_else(|join| {
                    Err(ResolveError::Io {
                        file,
                        source: io::Error::other(join),
                    })
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tftp::path::sanitize;
    use std::os::unix::fs::symlink;

    /// A root with a file, a subdir, a sibling `root-other` and symlinks.
    fn layout() -> (tempfile::TempDir, RootResolver) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let other = dir.path().join("root-other");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(root.join("sub/file"), b"inside").unwrap();
        std::fs::write(other.join("secret"), b"outside").unwrap();
        symlink(&other, root.join("escape")).unwrap();
        symlink(other.join("secret"), root.join("secret-link")).unwrap();
        symlink("sub/file", root.join("inner-link")).unwrap();
        let resolver = RootResolver::new(&root).unwrap();
        (dir, resolver)
    }

    fn open(r: &RootResolver, name: &str) -> Result<FileSource, ResolveError> {
        r.open(&sanitize(name).unwrap())
    }

    #[test]
    fn serves_files_inside_and_inner_symlinks() {
        let (_dir, r) = layout();
        assert_eq!(open(&r, "sub/file").unwrap().size(), 6);
        assert_eq!(open(&r, "inner-link").unwrap().size(), 6);
    }

    #[test]
    fn refuses_symlinks_leaving_the_root() {
        let (_dir, r) = layout();
        for name in ["escape/secret", "secret-link"] {
            let err = open(&r, name).unwrap_err();
            assert!(matches!(err, ResolveError::Denied { .. }), "{name}: {err}");
            assert_eq!(err.reply().0, ErrorCode::AccessViolation);
        }
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let (dir, r) = layout();
        let fifo = dir.path().join("root/fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo failed");
        let err = open(&r, "fifo").unwrap_err();
        assert!(matches!(err, ResolveError::NotFound { .. }), "{err}");
    }

    #[test]
    fn missing_files_and_directories_are_not_found() {
        let (_dir, r) = layout();
        for name in ["nope", "sub", "sub/nope"] {
            let err = open(&r, name).unwrap_err();
            assert!(
                matches!(err, ResolveError::NotFound { .. }),
                "{name}: {err}"
            );
            assert_eq!(err.reply().0, ErrorCode::FileNotFound);
        }
    }
}
