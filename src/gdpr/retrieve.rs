//! Retrieval: a zip with one CSV per table and a `manifest.json`, streamed row by row.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::error::{Error, Result};
use crate::ext::EXTENSIONS;
use crate::jid::BareJid;
use crate::store::Store;
use crate::time::Timestamp;

/// How an export is written.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExportOptions {
    /// Time written into the manifest and as every entry's modification time; `None` uses
    /// the current time. Fix it to get byte-identical zips for identical data.
    pub timestamp: Option<Timestamp>,
    /// Deflate level, 1 (fast, the default) to 9.
    pub compression_level: i64,
    /// Overwrite an existing output file ([`retrieve_to_path`] only).
    pub force: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            timestamp: None,
            compression_level: 1,
            force: false,
        }
    }
}

impl ExportOptions {
    /// Sets [`ExportOptions::timestamp`].
    #[must_use]
    pub fn timestamp(mut self, t: Timestamp) -> Self {
        self.timestamp = Some(t);
        self
    }
    /// Sets [`ExportOptions::force`].
    #[must_use]
    pub fn force(mut self, yes: bool) -> Self {
        self.force = yes;
        self
    }
}

/// One CSV file of an export, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSummary {
    /// File name inside the zip.
    pub name: &'static str,
    /// Data rows (the header not counted).
    pub rows: u64,
    /// CRC-32 of the file's bytes.
    pub crc32: u32,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// What an export holds; also written as `manifest.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    /// Always `jidstore-gdpr-export`.
    pub format: &'static str,
    /// The jidstore version that wrote it.
    pub jidstore_version: &'static str,
    /// The subject.
    pub subject: String,
    /// When it was written (RFC 3339).
    pub exported_at: String,
    /// Every CSV file, in zip order.
    pub files: Vec<FileSummary>,
}

impl ExportSummary {
    /// Data rows over all files.
    pub fn total_rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }
}

/// Counts bytes and CRC of what passes through.
struct Tally<W> {
    inner: W,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl<W: Write> Write for Tally<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let written = buf.get(..n).unwrap_or(buf);
        self.crc.update(written);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn zip_time(t: Timestamp) -> zip::DateTime {
    let secs = t.as_secs();
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|dt| {
            zip::DateTime::try_from(time::PrimitiveDateTime::new(dt.date(), dt.time())).ok()
        })
        .unwrap_or_default()
}

/// Writes everything held about `subject` into `sink` as a zip: one CSV per table (header
/// only when empty), then `manifest.json`. Rows are streamed; memory does not grow with the
/// amount of data. Fails with [`Error::NoPersonalData`] when every table is empty (the sink's
/// contents are then unspecified).
pub fn retrieve<W: Write + Seek>(
    store: &Store,
    subject: &BareJid,
    sink: W,
    options: &ExportOptions,
) -> Result<ExportSummary> {
    let now = options.timestamp.unwrap_or_else(Timestamp::now);
    let file_options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(options.compression_level))
        .last_modified_time(zip_time(now))
        .unix_permissions(0o600)
        .large_file(true);
    let mut zip = ZipWriter::new(sink);
    let mut files = Vec::new();
    for ext in EXTENSIONS {
        for (i, table) in ext.tables().iter().enumerate() {
            zip.start_file(table.file, file_options)?;
            let tally = Tally {
                inner: &mut zip,
                crc: crc32fast::Hasher::new(),
                bytes: 0,
            };
            let mut csv = csv::WriterBuilder::new()
                .terminator(csv::Terminator::Any(b'\n'))
                .from_writer(tally);
            csv.write_record(table.header)?;
            let mut rows = 0u64;
            ext.rows(store, subject, i, &mut |row| {
                rows += 1;
                csv.write_record(&row)?;
                Ok(())
            })?;
            csv.flush()?;
            let tally = csv.into_inner().map_err(|e| Error::Io(e.into_error()))?;
            files.push(FileSummary {
                name: table.file,
                rows,
                crc32: tally.crc.finalize(),
                bytes: tally.bytes,
            });
        }
    }
    let summary = ExportSummary {
        format: "jidstore-gdpr-export",
        jidstore_version: env!("CARGO_PKG_VERSION"),
        subject: subject.to_string(),
        exported_at: now.to_rfc3339(),
        files,
    };
    if summary.total_rows() == 0 {
        return Err(Error::NoPersonalData(subject.to_string()));
    }
    zip.start_file("manifest.json", file_options)?;
    let manifest =
        serde_json::to_vec_pretty(&summary).map_err(|e| Error::Io(io::Error::other(e)))?;
    zip.write_all(&manifest)?;
    let mut sink = zip.finish()?;
    sink.flush()?;
    Ok(summary)
}

/// Resolves the output path: an existing directory gets `<dir>/<username>.zip`.
fn resolve_output(subject: &BareJid, path: &Path) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        return Err(Error::InvalidInput("output path is empty".into()));
    }
    let target = if path.is_dir() {
        path.join(format!(
            "{}.zip",
            subject.node().unwrap_or(subject.as_str())
        ))
    } else {
        path.to_path_buf()
    };
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match fs::metadata(&parent) {
        Ok(m) if m.is_dir() => Ok(target),
        Ok(_) => Err(Error::Path {
            action: "write into",
            path: parent,
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        }),
        Err(e) => Err(Error::Path {
            action: "write into directory",
            path: parent,
            source: e,
        }),
    }
}

/// Removes the temporary file unless disarmed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

fn create_private(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).read(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// Writes the export of `subject` to `path` (or `<path>/<username>.zip` when `path` is a
/// directory) and returns where it went.
///
/// The zip is written to a temporary file in the target directory, created owner-only
/// (0600), fsynced and renamed into place, so a reader never sees a partial export and a
/// failure leaves nothing behind. An existing file is refused unless `options.force`. The
/// parent directory must exist.
pub fn retrieve_to_path(
    store: &Store,
    subject: &BareJid,
    path: &Path,
    options: &ExportOptions,
) -> Result<(PathBuf, ExportSummary)> {
    let target = resolve_output(subject, path)?;
    if !options.force && fs::symlink_metadata(&target).is_ok() {
        return Err(Error::OutputExists(target));
    }
    if target.is_dir() {
        return Err(Error::Path {
            action: "overwrite",
            path: target.clone(),
            source: io::Error::new(io::ErrorKind::IsADirectory, "is a directory"),
        });
    }
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = target
        .file_name()
        .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let file = create_private(&tmp).map_err(|source| Error::Path {
        action: "create export file in",
        path: dir.clone(),
        source,
    })?;
    let mut guard = TempGuard(Some(tmp.clone()));
    let write_err = |source: io::Error| Error::Path {
        action: "write export file",
        path: target.clone(),
        source,
    };
    let summary =
        retrieve(store, subject, io::BufWriter::new(&file), options).map_err(|e| match e {
            Error::Io(source) => write_err(source),
            other => other,
        })?;
    file.sync_all().map_err(write_err)?;
    drop(file);
    if !options.force && fs::symlink_metadata(&target).is_ok() {
        return Err(Error::OutputExists(target));
    }
    fs::rename(&tmp, &target).map_err(write_err)?;
    guard.0 = None;
    // Make the rename itself durable.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok((target, summary))
}
