//! Streaming reads of PIE files: events with their line and byte offset, elements built
//! one at a time (never the whole document), and streams reopened at a recorded offset with
//! the namespace declarations in scope there, so an import can read a user twice.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use quick_xml::Reader;
use quick_xml::events::Event;

use super::Problem;
use super::dom::{self, Child, Element, Scope};

/// Read buffer per open file.
const READ_BUF: usize = 1 << 16;

/// Where documents come from: the file system, or one in-memory document (no includes).
pub(crate) enum Source<'a> {
    /// Files, opened by path.
    Files,
    /// One document; every other path is missing.
    Bytes(&'a [u8]),
}

impl Source<'_> {
    /// Whether `xi:include` targets can be read.
    pub fn fs_access(&self) -> bool {
        matches!(self, Source::Files)
    }

    fn open(&self, path: &Path, offset: u64) -> io::Result<Box<dyn BufRead + '_>> {
        match self {
            Source::Files => {
                let mut f = File::open(path)?;
                f.seek(SeekFrom::Start(offset))?;
                Ok(Box::new(BufReader::with_capacity(READ_BUF, f)))
            }
            Source::Bytes(bytes) => {
                let at = usize::try_from(offset).unwrap_or(usize::MAX);
                Ok(Box::new(bytes.get(at..).unwrap_or_default()))
            }
        }
    }
}

/// Counts the newlines the XML reader consumes, for line numbers without keeping the bytes.
struct Counting<R> {
    inner: R,
    newlines: u64,
}

#[expect(
    clippy::naive_bytecount,
    reason = "no extra dependency; a small part of the parse time"
)]
fn newlines(b: &[u8]) -> u64 {
    b.iter().filter(|c| **c == b'\n').count() as u64
}

impl<R: BufRead> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.newlines += newlines(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        // The bytes being consumed are still in the inner buffer: no I/O happens here.
        if let Ok(b) = self.inner.fill_buf() {
            self.newlines += newlines(b.get(..amt).unwrap_or(b));
        }
        self.inner.consume(amt);
    }
}

/// Where an element starts, to read it again later.
#[derive(Clone, Debug)]
pub(crate) struct Mark {
    pub file: Arc<Path>,
    /// Byte offset of its `<`.
    pub offset: u64,
    pub line: u32,
    /// Namespace declarations in scope before it.
    pub scopes: Vec<Scope>,
}

/// Where an event starts in the stream.
#[derive(Clone, Copy, Debug)]
pub(crate) struct At {
    offset: u64,
    line: u32,
}

/// One parsed event. `Start` elements carry no children yet; their `End` follows.
pub(crate) enum Ev {
    Start(Element, At),
    Empty(Element, At),
    End,
    Text(String),
    Eof,
}

/// A namespace-aware event stream over one file.
pub(crate) struct XmlStream<'s> {
    reader: Reader<Counting<Box<dyn BufRead + 's>>>,
    buf: Vec<u8>,
    file: Arc<Path>,
    /// Absolute offset and line of the stream's first byte.
    origin: u64,
    first_line: u32,
    scopes: Vec<Scope>,
}

impl<'s> XmlStream<'s> {
    /// Opens `file` at the start.
    pub fn open(source: &'s Source<'_>, file: &Arc<Path>) -> io::Result<Self> {
        Self::open_at(
            source,
            &Mark {
                file: file.clone(),
                offset: 0,
                line: 1,
                scopes: Vec::new(),
            },
        )
    }

    /// Opens a stream positioned at `mark`.
    pub fn open_at(source: &'s Source<'_>, mark: &Mark) -> io::Result<Self> {
        let input = source.open(&mark.file, mark.offset)?;
        let mut reader = Reader::from_reader(Counting {
            inner: input,
            newlines: 0,
        });
        reader.config_mut().check_end_names = true;
        Ok(XmlStream {
            reader,
            buf: Vec::new(),
            file: mark.file.clone(),
            origin: mark.offset,
            first_line: mark.line,
            scopes: mark.scopes.clone(),
        })
    }

    /// A well-formedness problem at the current position.
    pub fn bad_here(&self, m: impl std::fmt::Display) -> Problem {
        self.bad(self.line(), m)
    }

    fn line(&self) -> u32 {
        let n = u32::try_from(self.reader.get_ref().newlines).unwrap_or(u32::MAX);
        self.first_line.saturating_add(n)
    }

    /// A well-formedness problem at `line`.
    pub fn bad(&self, line: u32, m: impl std::fmt::Display) -> Problem {
        Problem {
            file: self.file.to_path_buf(),
            line,
            message: format!("not well-formed XML: {m}"),
        }
    }

    /// The next event; comments, processing instructions and the declaration are skipped.
    pub fn next(&mut self) -> Result<Ev, Problem> {
        loop {
            self.buf.clear();
            let line = self.line();
            let offset = self.origin + self.reader.buffer_position();
            let event = match self.reader.read_event_into(&mut self.buf) {
                Ok(e) => e,
                Err(e) => {
                    let line = self.line();
                    return Err(Problem {
                        file: self.file.to_path_buf(),
                        line,
                        message: format!("not well-formed XML: {e}"),
                    });
                }
            };
            let bad = |m: String| Problem {
                file: self.file.to_path_buf(),
                line,
                message: format!("not well-formed XML: {m}"),
            };
            return match event {
                Event::Start(e) => {
                    let el = dom::open_element(&e, &mut self.scopes, &self.file, line)?;
                    Ok(Ev::Start(el, At { offset, line }))
                }
                Event::Empty(e) => {
                    let el = dom::open_element(&e, &mut self.scopes, &self.file, line)?;
                    self.scopes.pop();
                    Ok(Ev::Empty(el, At { offset, line }))
                }
                Event::End(_) => {
                    self.scopes.pop();
                    Ok(Ev::End)
                }
                Event::Text(t) => Ok(Ev::Text(t.xml10_content().into_owned())),
                Event::CData(t) => Ok(Ev::Text(t.xml10_content().into_owned())),
                Event::GeneralRef(r) => match r.resolve_char_ref() {
                    Ok(Some(c)) => Ok(Ev::Text(c.to_string())),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(&r)
                        .map(|s| Ev::Text(s.to_owned()))
                        .ok_or_else(|| bad(format!("unknown entity &{};", &*r))),
                    Err(e) => Err(bad(e.to_string())),
                },
                Event::DocType(_) => Err(bad("DOCTYPE is not allowed".into())),
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => continue,
                Event::Eof => Ok(Ev::Eof),
            };
        }
    }

    /// A mark to reopen the element just read at `at`: `open` when its start tag was
    /// read (its own declarations are in scope), not for an empty element.
    pub fn mark(&self, at: At, open: bool) -> Mark {
        let n = self.scopes.len().saturating_sub(usize::from(open));
        Mark {
            file: self.file.clone(),
            offset: at.offset,
            line: at.line,
            scopes: self.scopes.get(..n).unwrap_or_default().to_vec(),
        }
    }

    /// Reads the content of `el` (its start tag just read) up to its end tag.
    pub fn finish_element(&mut self, el: &mut Element) -> Result<(), Problem> {
        let mut stack: Vec<Element> = Vec::new();
        loop {
            let ev = self.next()?;
            let top = stack.last_mut().unwrap_or(&mut *el);
            match ev {
                Ev::Start(c, _) => stack.push(c),
                Ev::Empty(c, _) => top.children.push(Child::Element(c)),
                Ev::Text(t) => {
                    if let Some(Child::Text(prev)) = top.children.last_mut() {
                        prev.push_str(&t);
                    } else {
                        top.children.push(Child::Text(t));
                    }
                }
                Ev::End => match stack.pop() {
                    Some(c) => stack
                        .last_mut()
                        .unwrap_or(&mut *el)
                        .children
                        .push(Child::Element(c)),
                    None => return Ok(()),
                },
                Ev::Eof => {
                    let line = self.line();
                    return Err(self.bad(line, "unclosed element"));
                }
            }
        }
    }

    /// Skips the content of the element whose start tag was just read, checking only that
    /// tags balance (for input already checked by a first pass).
    pub fn skip_element(&mut self) -> Result<(), Problem> {
        let mut depth = 0usize;
        loop {
            self.buf.clear();
            let event = self.reader.read_event_into(&mut self.buf);
            match event {
                Ok(Event::Start(_)) => depth += 1,
                Ok(Event::End(_)) => {
                    if depth == 0 {
                        self.scopes.pop();
                        return Ok(());
                    }
                    depth -= 1;
                }
                Ok(Event::Eof) => {
                    let line = self.line();
                    return Err(self.bad(line, "unclosed element"));
                }
                Ok(_) => {}
                Err(e) => {
                    let line = self.line();
                    return Err(self.bad(line, e));
                }
            }
        }
    }

    /// After the root element: only whitespace, comments and processing instructions.
    pub fn expect_eof(&mut self) -> Result<(), Problem> {
        loop {
            let line = self.line();
            match self.next()? {
                Ev::Eof => return Ok(()),
                Ev::Text(t) if t.trim().is_empty() => {}
                Ev::Text(_) => return Err(self.bad(line, "text outside the root element")),
                Ev::Start(..) | Ev::Empty(..) | Ev::End => {
                    return Err(self.bad(line, "content after the root element"));
                }
            }
        }
    }
}
