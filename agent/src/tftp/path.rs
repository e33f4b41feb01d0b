//! Turns a requested file name into a relative path that cannot leave the boot root by its text.
//!
//! This is the pure half of confinement: it refuses `..`, absolute names,
//! NUL bytes and empty names by whole components. The other half, which
//! follows symlinks on disk, is in [`super::resolver::RootResolver`].

use std::fmt;
use std::path::PathBuf;

/// Longest file name accepted, in bytes; RFC 2347 §2 keeps a whole request
/// within 512 octets, and no firmware sends longer names.
pub const MAX_NAME_LEN: usize = 1024;

/// A request path made only of normal components, relative to the root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestPath {
    components: Vec<String>,
}

impl RequestPath {
    /// The components, outermost first; never empty, never `.` or `..`.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// The path relative to the root.
    pub fn to_relative(&self) -> PathBuf {
        self.components.iter().collect()
    }
}

impl fmt::Display for RequestPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.components.join("/"))
    }
}

/// Why a name is refused; every case is answered with an access violation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Nothing but separators or `.`.
    #[error("empty file name")]
    Empty,
    /// A NUL byte inside the name.
    #[error("file name contains a NUL byte")]
    Nul,
    /// Starts with `/` or `\`.
    #[error("absolute file name {name:?}")]
    Absolute {
        /// The name as requested.
        name: String,
    },
    /// Has a `..` component.
    #[error("file name {name:?} climbs out with `..`")]
    ParentDir {
        /// The name as requested.
        name: String,
    },
    /// Longer than [`MAX_NAME_LEN`].
    #[error("file name of {len} bytes is too long")]
    TooLong {
        /// Its length.
        len: usize,
    },
}

/// Checks a requested name.
///
/// Backslashes count as separators: Windows-oriented boot loaders (WDS,
/// some vendors' PXE menus) request `boot\x64\file`, and treating `\` as
/// an ordinary byte would also let `..\` slip past the component check on
/// a root shared with Samba. Empty and `.` components are dropped, so
/// `a//b` and `./a` name the same file as `a/b` and `a`.
pub fn sanitize(name: &str) -> Result<RequestPath, PathError> {
    if name.len() > MAX_NAME_LEN {
        return Err(PathError::TooLong { len: name.len() });
    }
    if name.contains('\0') {
        return Err(PathError::Nul);
    }
    if name.starts_with(['/', '\\']) {
        return Err(PathError::Absolute {
            name: name.to_owned(),
        });
    }
    let mut components = Vec::new();
    for part in name.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                return Err(PathError::ParentDir {
                    name: name.to_owned(),
                });
            }
            normal => components.push(normal.to_owned()),
        }
    }
    if components.is_empty() {
        return Err(PathError::Empty);
    }
    Ok(RequestPath { components })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_normal_names() {
        assert_eq!(sanitize("pxelinux.0").unwrap().to_string(), "pxelinux.0");
        assert_eq!(sanitize("a//b/./c").unwrap().to_string(), "a/b/c");
        assert_eq!(
            sanitize("boot\\x64\\wdsnbp.com").unwrap().to_string(),
            "boot/x64/wdsnbp.com"
        );
        // Dots inside a component are just a name.
        assert_eq!(sanitize("..foo/bar..").unwrap().to_string(), "..foo/bar..");
    }

    #[test]
    fn refuses_escapes() {
        for name in [
            "..",
            "../etc/passwd",
            "a/../../b",
            "a/..",
            "..\\x",
            "a\\..\\..\\b",
        ] {
            assert!(
                matches!(sanitize(name), Err(PathError::ParentDir { .. })),
                "{name}"
            );
        }
        // `root-other/`: a sibling whose name starts with the root's name.
        assert!(matches!(
            sanitize("../root-other/secret"),
            Err(PathError::ParentDir { .. })
        ));
        for name in ["/etc/passwd", "\\etc", "//x"] {
            assert!(
                matches!(sanitize(name), Err(PathError::Absolute { .. })),
                "{name}"
            );
        }
    }

    #[test]
    fn refuses_empty_nul_and_long() {
        for name in ["", ".", "./", "./."] {
            assert_eq!(sanitize(name), Err(PathError::Empty), "{name:?}");
        }
        assert_eq!(sanitize("a\0b"), Err(PathError::Nul));
        assert_eq!(
            sanitize(&"a".repeat(MAX_NAME_LEN + 1)),
            Err(PathError::TooLong {
                len: MAX_NAME_LEN + 1
            })
        );
    }
}
