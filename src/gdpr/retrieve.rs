//! Retrieval: a zip with one CSV per table and a `manifest.json`, streamed row by row.

use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::error::{Error, Result};
use crate::ext::EXTENSIONS;
use crate::jid::BareJid;
use crate::output;
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

/// The zip's sink. `ZipWriter` finalizes the archive when dropped and prints to stderr if
/// that fails (as it does when the disk is full); after a failed export the sink is switched
/// to discarding (as it is by its first failed write), so the drop finalizes into nothing,
/// quietly, and writes no more to the real sink.
struct Sink<W> {
    inner: W,
    discard: std::rc::Rc<std::cell::Cell<bool>>,
    pos: u64,
}

impl<W> Sink<W> {
    /// Switches to discarding after the first error of the real sink.
    fn latch<T>(&self, res: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &res
            && e.kind() != io::ErrorKind::Interrupted
        {
            self.discard.set(true);
        }
        res
    }
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.discard.get() {
            self.pos += buf.len() as u64;
            return Ok(buf.len());
        }
        let res = self.inner.write(buf);
        self.latch(res)
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.discard.get() {
            return Ok(());
        }
        let res = self.inner.flush();
        self.latch(res)
    }
}

impl<W: Seek> Seek for Sink<W> {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        if !self.discard.get() {
            let res = self.inner.seek(to);
            self.pos = self.latch(res)?;
            return Ok(self.pos);
        }
        self.pos = match to {
            io::SeekFrom::Start(n) => n,
            io::SeekFrom::Current(d) | io::SeekFrom::End(d) => self.pos.saturating_add_signed(d),
        };
        Ok(self.pos)
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
    let discard = std::rc::Rc::new(std::cell::Cell::new(false));
    let sink = Sink {
        inner: sink,
        discard: discard.clone(),
        pos: 0,
    };
    let mut zip = ZipWriter::new(sink);
    let res = write_zip(store, subject, &mut zip, file_options, now);
    match res {
        Ok(summary) => {
            let mut sink = zip.finish()?;
            sink.flush()?;
            Ok(summary)
        }
        Err(e) => {
            discard.set(true);
            Err(e)
        }
    }
}

fn write_zip<W: Write + Seek>(
    store: &Store,
    subject: &BareJid,
    zip: &mut ZipWriter<W>,
    file_options: SimpleFileOptions,
    now: Timestamp,
) -> Result<ExportSummary> {
    let mut files = Vec::new();
    for ext in EXTENSIONS {
        for (i, table) in ext.tables().iter().enumerate() {
            zip.start_file(table.file, file_options)?;
            let tally = Tally {
                inner: &mut *zip,
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
    Ok(summary)
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
    let name = format!("{}.zip", subject.node().unwrap_or(subject.as_str()));
    let target = output::resolve(path, &name)?;
    let summary = output::write_new(&target, options.force, |sink| {
        retrieve(store, subject, sink, options)
    })?;
    Ok((target, summary))
}
