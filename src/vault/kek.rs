//! The key-encryption key: 32-byte keys by version, from `storage.kek_file`
//! (one `<version> <base64 key>` per line, `#` comments) or the same text in
//! `ECOMMERCE_STORAGE__KEK`. Several versions may be present at once, so a
//! rotation can wrap with the new one while the old one still unwraps. The
//! keys never leave the process: no `Serialize`, a redacted `Debug`.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use zeroize::Zeroizing;

/// The KEK versions this node holds.
#[derive(Clone)]
pub struct Kek {
    versions: BTreeMap<u32, Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("versions", &self.versions.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KekError {
    #[error("line {line}: {why}")]
    Syntax { line: usize, why: String },
    #[error("no key in the KEK file")]
    Empty,
    #[error("{path}: readable by others (mode {mode:o}); make it 0600")]
    Exposed { path: String, mode: u32 },
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} already holds KEK version {version}")]
    VersionTaken { path: String, version: u32 },
    #[error("a KEK version is a positive integer")]
    VersionZero,
    #[error(
        "no KEK: a node that serves other hosts or joins a cluster needs storage.kek_file \
         (the same file on every node; make one with `ecommerce keys generate-kek --file F`)"
    )]
    Required,
}

impl Kek {
    /// Parses the KEK text.
    pub fn parse(text: &str) -> Result<Self, KekError> {
        let mut versions = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: &str| KekError::Syntax {
                line: i + 1,
                why: why.to_string(),
            };
            let (version, key) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad("expected `<version> <base64 key>`"))?;
            let version: u32 = version
                .parse()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| bad("the version is a positive integer"))?;
            let bytes = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(key.trim())
                    .map_err(|_| bad("the key is not base64"))?,
            );
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| bad("a key is 32 bytes"))?;
            if versions.insert(version, Zeroizing::new(key)).is_some() {
                return Err(bad("this version appears twice"));
            }
        }
        if versions.is_empty() {
            return Err(KekError::Empty);
        }
        Ok(Self { versions })
    }

    /// Reads the KEK file at `path`, refusing one that others may read.
    pub fn read(path: &Path) -> Result<Self, KekError> {
        let read_err = |source| KekError::Read {
            path: path.display().to_string(),
            source,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(read_err)?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(KekError::Exposed {
                    path: path.display().to_string(),
                    mode: mode & 0o777,
                });
            }
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(read_err)?);
        Self::parse(&text)
    }

    /// The newest version, which wraps new data keys.
    pub fn current(&self) -> u32 {
        self.versions.keys().next_back().copied().unwrap_or(0)
    }

    /// Every version held, oldest first.
    pub fn versions(&self) -> Vec<u32> {
        self.versions.keys().copied().collect()
    }

    /// The key of `version`, if held.
    pub fn key(&self, version: u32) -> Option<&[u8; 32]> {
        self.versions.get(&version).map(|k| &**k)
    }
}

/// Appends a new random key to the KEK file at `path` (created 0600 when
/// missing) as `version`, or the highest version present plus one; returns
/// the version written.
pub fn append_new_version(path: &Path, version: Option<u32>) -> Result<u32, KekError> {
    use std::io::Write;
    let write_err = |source| KekError::Write {
        path: path.display().to_string(),
        source,
    };
    let existing = match std::fs::metadata(path) {
        Ok(_) => Some(Kek::read(path)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(KekError::Read {
                path: path.display().to_string(),
                source,
            })
        }
    };
    let next = existing
        .as_ref()
        .map_or(1, |k| k.current().saturating_add(1));
    let version = version.unwrap_or(next);
    if version == 0 {
        return Err(KekError::VersionZero);
    }
    if existing
        .as_ref()
        .is_some_and(|kek| kek.key(version).is_some())
    {
        return Err(KekError::VersionTaken {
            path: path.display().to_string(),
            version,
        });
    }
    let key = Zeroizing::new(rand::random::<[u8; 32]>());
    let line = Zeroizing::new(format!(
        "{version} {}\n",
        base64::engine::general_purpose::STANDARD.encode(key.as_slice())
    ));
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(write_err)?;
    file.write_all(line.as_bytes()).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(byte: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    }

    #[test]
    fn versions_are_read_and_the_newest_is_current() {
        let text = format!(
            "# rotated 2026-12\n1 {}\n\n2 {}  # current\n",
            b64(1),
            b64(2)
        );
        let kek = Kek::parse(&text).unwrap();
        assert_eq!(kek.versions(), [1, 2]);
        assert_eq!(kek.current(), 2);
        assert_eq!(kek.key(1), Some(&[1u8; 32]));
        assert!(kek.key(3).is_none());
        assert!(!format!("{kek:?}").contains("AQEB"), "Debug shows no key");
    }

    #[test]
    fn malformed_files_are_refused_with_their_line() {
        for (text, line) in [
            (format!("0 {}", b64(1)), 1),
            ("1 not-base64!".to_string(), 1),
            (
                format!(
                    "1 {}",
                    base64::engine::general_purpose::STANDARD.encode([1u8; 16])
                ),
                1,
            ),
            (format!("1 {}\n1 {}", b64(1), b64(2)), 2),
            ("1".to_string(), 1),
        ] {
            match Kek::parse(&text) {
                Err(KekError::Syntax { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(Kek::parse("# nothing\n"), Err(KekError::Empty)));
    }

    #[test]
    fn generated_versions_append_and_the_file_stays_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        assert_eq!(append_new_version(&path, None).unwrap(), 1);
        assert_eq!(append_new_version(&path, None).unwrap(), 2);
        assert_eq!(append_new_version(&path, Some(7)).unwrap(), 7);
        assert!(
            append_new_version(&path, Some(2)).is_err(),
            "an existing version"
        );
        let kek = Kek::read(&path).unwrap();
        assert_eq!(kek.versions(), [1, 2, 7]);
        assert_ne!(kek.key(1), kek.key(2), "random keys");
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        std::fs::write(&path, format!("1 {}\n", b64(7))).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(Kek::read(&path), Err(KekError::Exposed { .. })));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Kek::read(&path).unwrap().current(), 1);
    }
}
