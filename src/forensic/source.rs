//! The source of a forensic export: walking it (regular files and directories only), hashing
//! every file while copying it into the working directory, and hashing it again afterwards.
//!
//! The source is only ever opened for reading. Each file is read once for the copy, and the
//! SHA-256 is taken of exactly the bytes copied, so the recorded hashes describe the data the
//! export was made from.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Read size when hashing and copying.
const CHUNK: usize = 256 * 1024;

/// One regular file of the source, as recorded in a forensic manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceFile {
    /// Path relative to the source directory, `/`-separated.
    pub path: String,
    /// Size in bytes (the bytes hashed).
    pub bytes: u64,
    /// SHA-256 of the file's bytes, lower-case hex.
    pub sha256: String,
}

fn refuse(path: &Path, why: &str) -> Error {
    Error::Path {
        action: "examine source file",
        path: path.to_path_buf(),
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{why}; forensic-export reads only regular files and directories"),
        ),
    }
}

/// The regular files under `root` (relative paths, sorted) and its subdirectories (relative,
/// parents first). Symbolic links, sockets, FIFOs, devices and non-UTF-8 names are refused,
/// except the admin socket at the top (`admin.sock`), which holds no data and is skipped.
pub(crate) fn walk(root: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    walk_into(root, "", &mut files, &mut dirs)?;
    files.sort();
    Ok((files, dirs))
}

/// The admin socket's name, skipped in a copy.
#[cfg(unix)]
const ADMIN_SOCKET: &str = crate::paths::ADMIN_SOCKET;

/// Whether `kind` is the admin socket (`name`, at the top of the copy).
fn is_admin_socket(rel: &str, name: &str, kind: fs::FileType) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        rel.is_empty() && name == ADMIN_SOCKET && kind.is_socket()
    }
    #[cfg(not(unix))]
    {
        let _ = (rel, name, kind);
        false
    }
}

fn walk_into(
    root: &Path,
    rel: &str,
    files: &mut Vec<String>,
    dirs: &mut Vec<String>,
) -> Result<()> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let mut entries = fs::read_dir(&dir)
        .map_err(Error::on_path("read source directory", &dir))?
        .collect::<io::Result<Vec<_>>>()
        .map_err(Error::on_path("read source directory", &dir))?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let full = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| refuse(&full, "its name is not UTF-8"))?;
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let kind = fs::symlink_metadata(&full)
            .map_err(Error::on_path("examine source file", &full))?
            .file_type();
        if kind.is_symlink() {
            return Err(refuse(&full, "it is a symbolic link"));
        } else if kind.is_dir() {
            dirs.push(child.clone());
            walk_into(root, &child, files, dirs)?;
        } else if kind.is_file() {
            files.push(child);
        } else if is_admin_socket(rel, &child, kind) {
            // What `cp -a` copies from a live data dir: an endpoint, no data. Not listed.
        } else {
            return Err(refuse(
                &full,
                "it is a special file (socket, FIFO or device)",
            ));
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Hashes one file, writing every byte read to `copy` as well when given.
fn hash_file(path: &Path, mut copy: Option<&mut dyn Write>, rel: &str) -> Result<SourceFile> {
    let mut file = File::open(path).map_err(Error::on_path("read source file", path))?;
    if !file
        .metadata()
        .map_err(Error::on_path("read source file", path))?
        .is_file()
    {
        return Err(refuse(path, "it is no longer a regular file"));
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut bytes = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::on_path("read source file", path)(e)),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        if let Some(out) = copy.as_deref_mut() {
            out.write_all(chunk)?;
        }
        bytes += n as u64;
    }
    Ok(SourceFile {
        path: rel.to_owned(),
        bytes,
        sha256: hex(&hasher.finalize()),
    })
}

fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path)
}

/// Copies the tree under `root` into `dest` (which must not exist), hashing every file as it
/// is copied; returns the hashes in path order.
pub(crate) fn copy_hashed(root: &Path, dest: &Path) -> Result<Vec<SourceFile>> {
    let (files, dirs) = walk(root)?;
    create_private_dir(dest).map_err(Error::on_path("create working copy", dest))?;
    for d in &dirs {
        let p = dest.join(d);
        create_private_dir(&p).map_err(Error::on_path("create working copy", &p))?;
    }
    let mut out = Vec::with_capacity(files.len());
    for rel in &files {
        let target = dest.join(rel);
        let mut o = OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let file = o
            .open(&target)
            .map_err(Error::on_path("create working copy", &target))?;
        let mut w = io::BufWriter::with_capacity(CHUNK, file);
        let record = hash_file(&root.join(rel), Some(&mut w), rel)
            .and_then(|r| w.flush().map(|()| r).map_err(Error::Io))
            .map_err(|e| match e {
                Error::Io(source) => Error::on_path("write working copy", &target)(source),
                other => other,
            })?;
        out.push(record);
    }
    Ok(out)
}

/// Hashes every file under `root` again (same walk, same refusals).
pub(crate) fn hash_tree(root: &Path) -> Result<Vec<SourceFile>> {
    let (files, _) = walk(root)?;
    files
        .iter()
        .map(|rel| hash_file(&root.join(rel), None, rel))
        .collect()
}

/// The first difference between two hash lists (both in path order), if any.
pub(crate) fn difference(before: &[SourceFile], after: &[SourceFile]) -> Option<String> {
    for f in before {
        match after.iter().find(|a| a.path == f.path) {
            None => return Some(format!("{} disappeared", f.path)),
            Some(a) if a.bytes != f.bytes => {
                return Some(format!(
                    "{} went from {} to {} bytes",
                    f.path, f.bytes, a.bytes
                ));
            }
            Some(a) if a.sha256 != f.sha256 => {
                return Some(format!("{}: SHA-256 changed", f.path));
            }
            Some(_) => {}
        }
    }
    after
        .iter()
        .find(|a| !before.iter().any(|f| f.path == a.path))
        .map(|a| format!("{} appeared", a.path))
}

/// `path` made absolute and with symbolic links resolved, for comparing locations.
pub(crate) fn canonical(path: &Path, action: &'static str) -> Result<PathBuf> {
    fs::canonicalize(path).map_err(Error::on_path(action, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, bytes: u64, sha: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            bytes,
            sha256: sha.into(),
        }
    }

    #[test]
    fn difference_names_each_kind_of_change() {
        let a = vec![f("conf", 3, "aa"), f("db", 9, "bb")];
        assert_eq!(difference(&a, &a), None);
        let grown = vec![f("conf", 3, "aa"), f("db", 10, "bb")];
        assert_eq!(
            difference(&a, &grown).as_deref(),
            Some("db went from 9 to 10 bytes")
        );
        let flipped = vec![f("conf", 3, "aa"), f("db", 9, "cc")];
        assert_eq!(
            difference(&a, &flipped).as_deref(),
            Some("db: SHA-256 changed")
        );
        let gone = vec![f("db", 9, "bb")];
        assert_eq!(difference(&a, &gone).as_deref(), Some("conf disappeared"));
        let mut added = a.clone();
        added.push(f("snap.1", 1, "dd"));
        assert_eq!(difference(&a, &added).as_deref(), Some("snap.1 appeared"));
    }

    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        let empty = Sha256::new().finalize();
        assert_eq!(
            hex(&empty),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
