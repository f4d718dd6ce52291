//! What is noticed while a file's text is read: where the reader is, and
//! the keys given twice there. A serde visitor is given no context of its
//! own, so the one read running on this thread keeps it here. Pure: no
//! I/O, only the thread's own memory.

use std::cell::RefCell;

#[derive(Default)]
struct Reading {
    /// How deep in collections the reader is; 0 between documents.
    depth: usize,
    /// The 1-based number of the document being read.
    document: usize,
    path: Vec<Segment>,
    warnings: Vec<String>,
}

thread_local! {
    static READING: RefCell<Reading> = RefCell::new(Reading::default());
}

/// Runs `read` (one read of a file's text), and returns what it returned
/// and the warnings noted on the way.
pub fn read<T>(read: impl FnOnce() -> T) -> (T, Vec<String>) {
    READING.with(|r| *r.borrow_mut() = Reading::default());
    let out = read();
    let warnings = READING.with(|r| std::mem::take(&mut *r.borrow_mut()).warnings);
    (out, warnings)
}

/// Notes that the key just read was given before in the same mapping.
pub fn duplicate() {
    READING.with(|r| {
        let mut r = r.borrow_mut();
        let mut path = String::new();
        for segment in &r.path {
            match segment {
                Segment::Key(k) if path.is_empty() => path.push_str(k),
                Segment::Key(k) => {
                    path.push('.');
                    path.push_str(k);
                }
                Segment::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        let line = format!(
            "document {}: {path}: the key is given twice; the last value is used, as kubectl does",
            r.document
        );
        r.warnings.push(line);
    });
}

/// Inside a mapping or a sequence while this lives; entering one at the
/// top starts a new document.
pub struct Depth(());

impl Depth {
    pub fn enter() -> Depth {
        READING.with(|r| {
            let mut r = r.borrow_mut();
            if r.depth == 0 {
                r.document += 1;
            }
            r.depth += 1;
        });
        Depth(())
    }
}

impl Drop for Depth {
    fn drop(&mut self) {
        READING.with(|r| {
            let mut r = r.borrow_mut();
            r.depth = r.depth.saturating_sub(1);
        });
    }
}

/// A step of the path, held while its value is read.
#[derive(Debug, Clone)]
pub enum Segment {
    Key(String),
    Index(usize),
}

pub struct At(());

impl At {
    pub fn key(key: &str) -> At {
        At::push(Segment::Key(key.to_owned()))
    }

    pub fn index(i: usize) -> At {
        At::push(Segment::Index(i))
    }

    fn push(segment: Segment) -> At {
        READING.with(|r| r.borrow_mut().path.push(segment));
        At(())
    }
}

impl Drop for At {
    fn drop(&mut self) {
        READING.with(|r| {
            r.borrow_mut().path.pop();
        });
    }
}
