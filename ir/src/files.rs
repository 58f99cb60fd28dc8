//! Reading and writing the files a user (or a model file) names, within [`crate::limits`].
//!
//! Shared by every crate that touches the file system, so that each reads and writes the same
//! careful way: a file is measured before it is read, a file named *by another file* (ONNX
//! external data) must be a regular file and is opened without blocking, and an output path
//! that is not a regular file (a symlink, a FIFO, a device) is refused instead of being
//! silently replaced by a regular file, unless the caller asks to write into it.
//! Failures are `std::io::Error`s wrapping a [`FileError`], so callers keep their `Io`
//! variants (with the path) and the message still says what was wrong.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Why a file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("is {kind}, not a regular file")]
    NotRegular { kind: &'static str },
    #[error("is {kind}, not a regular file: refusing to replace it")]
    OutputNotRegular { kind: &'static str },
    #[error("is {len} bytes, more than the limit of {limit} bytes")]
    TooLarge { len: u64, limit: u64 },
    #[error("holds more than the limit of {limit} bytes")]
    StreamTooLarge { limit: u64 },
}

impl FileError {
    fn into_io(self) -> io::Error {
        let kind = match self {
            FileError::TooLarge { .. } | FileError::StreamTooLarge { .. } => {
                io::ErrorKind::FileTooLarge
            }
            FileError::NotRegular { .. } | FileError::OutputNotRegular { .. } => {
                io::ErrorKind::InvalidInput
            }
        };
        io::Error::new(kind, self)
    }

    /// The `FileError` inside an I/O error, if it is one of these refusals.
    pub fn of(e: &io::Error) -> Option<&FileError> {
        e.get_ref().and_then(|inner| inner.downcast_ref())
    }
}

/// What kind of non-regular file `ft` is, for messages.
fn kind_name(ft: std::fs::FileType) -> &'static str {
    if ft.is_symlink() {
        return "a symbolic link";
    }
    if ft.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// Whether `ft` is a pipe (FIFO or socket), which a user may name as a model or input
/// (`strata run <(...)`): read as a stream, up to the limit.
fn is_stream(ft: std::fs::FileType) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        ft.is_fifo() || ft.is_socket()
    }
    #[cfg(not(unix))]
    {
        let _ = ft;
        false
    }
}

/// Reads a whole file the user named, at most `limit` bytes. A regular file is measured first
/// and refused when larger; a pipe is read up to the limit; a directory or a device (which
/// could be endless, like `/dev/zero`) is refused.
pub fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let ft = meta.file_type();
    if ft.is_file() {
        if meta.len() > limit {
            return Err(FileError::TooLarge {
                len: meta.len(),
                limit,
            }
            .into_io());
        }
        let mut buf = Vec::with_capacity(meta.len() as usize);
        // The file may grow while it is read: never read past the limit.
        (&mut file).take(limit + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > limit {
            return Err(FileError::StreamTooLarge { limit }.into_io());
        }
        return Ok(buf);
    }
    if !is_stream(ft) {
        return Err(FileError::NotRegular {
            kind: kind_name(ft),
        }
        .into_io());
    }
    let mut buf = Vec::new();
    file.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(FileError::StreamTooLarge { limit }.into_io());
    }
    Ok(buf)
}

/// Opens a file that another file names (ONNX external data): it must be a regular file. The
/// open does not block (a FIFO would wait for a writer forever) and the type is checked on
/// the opened file, so swapping the path between a check and the open changes nothing.
/// Returns the file and its length.
pub fn open_regular(path: &Path) -> io::Result<(File, u64)> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: opening a FIFO for reading returns at once instead of waiting; for a
        // regular file it changes nothing. O_NOCTTY: a terminal never becomes ours.
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(FileError::NotRegular {
            kind: kind_name(meta.file_type()),
        }
        .into_io());
    }
    Ok((file, meta.len()))
}

/// How to write an output whose path exists and is not a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Existing {
    /// Refuse ([`FileError::OutputNotRegular`]): writing through a symlink or replacing a
    /// device node with a regular file is never what a build meant.
    #[default]
    Refuse,
    /// Write into it in place: follow a symlink, feed a FIFO, write to a device. The user
    /// asked for exactly this path (`-o /dev/stdout`).
    WriteInPlace,
}

/// Writes `bytes` to `path` through a temporary sibling file and a rename, so readers never
/// see a partial file and an existing file survives a failed write. An existing path that is
/// not a regular file is handled as `existing` says.
pub fn write_atomic(path: &Path, bytes: &[u8], existing: Existing) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => {
            let kind = kind_name(meta.file_type());
            let is_dir = std::fs::metadata(path).is_ok_and(|m| m.is_dir());
            if existing == Existing::Refuse || is_dir {
                return Err(FileError::OutputNotRegular { kind }.into_io());
            }
            // A dangling symlink's target is created, as `>` in a shell would.
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)?;
            return f.write_all(bytes).and_then(|()| f.flush());
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let (tmp, mut f) = create_temp(path)?;
    let result = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A new temporary file next to `path`. `create_new` never opens an existing file or follows
/// a symlink planted at the temporary name.
fn create_temp(path: &Path) -> io::Result<(PathBuf, File)> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut last = None;
    for attempt in 0..16 {
        let tmp = dir.join(format!(".{file_name}.tmp{}.{attempt}", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no temporary file name is free")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("strata-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn read_limited_measures_regular_files_first() {
        let dir = scratch("read");
        let p = dir.join("a.bin");
        std::fs::write(&p, [1u8; 100]).unwrap();
        assert_eq!(read_limited(&p, 100).unwrap().len(), 100);
        let e = read_limited(&p, 99).unwrap_err();
        assert_eq!(
            FileError::of(&e),
            Some(&FileError::TooLarge {
                len: 100,
                limit: 99
            })
        );
        let e = read_limited(&dir, 1000).unwrap_err();
        assert!(e.to_string().contains("directory") || e.kind() == io::ErrorKind::IsADirectory);
    }

    #[cfg(unix)]
    #[test]
    fn devices_are_not_read() {
        let e = read_limited(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert_eq!(
            FileError::of(&e),
            Some(&FileError::NotRegular {
                kind: "a character device"
            })
        );
        let e = open_regular(Path::new("/dev/null")).unwrap_err();
        assert!(FileError::of(&e).is_some(), "{e}");
    }

    /// A FIFO stands for every non-regular file: reading one is refused without blocking, and
    /// as an output (a device behaves the same; the tests never write to /dev, where a
    /// regression would replace a device node) it is refused or fed in place.
    #[cfg(unix)]
    #[test]
    fn a_fifo_is_not_read_and_as_output_is_refused_or_fed_in_place() {
        let dir = scratch("fifo");
        let fifo = dir.join("data.bin");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_regular(&fifo).unwrap_err();
        assert_eq!(
            FileError::of(&e),
            Some(&FileError::NotRegular { kind: "a FIFO" })
        );
        let e = write_atomic(&fifo, b"x", Existing::Refuse).unwrap_err();
        assert_eq!(
            FileError::of(&e),
            Some(&FileError::OutputNotRegular { kind: "a FIFO" })
        );
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        write_atomic(&fifo, b"fed", Existing::WriteInPlace).unwrap();
        assert_eq!(reader.join().unwrap(), b"fed");
        assert!(!std::fs::symlink_metadata(&fifo).unwrap().is_file());
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_refused_unless_written_in_place() {
        let dir = scratch("link");
        let target = dir.join("target.txt");
        let link = dir.join("link.txt");
        std::fs::write(&target, "old").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = write_atomic(&link, b"new", Existing::Refuse).unwrap_err();
        assert_eq!(
            e.to_string(),
            "is a symbolic link, not a regular file: refusing to replace it"
        );
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        write_atomic(&link, b"new", Existing::WriteInPlace).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
    }

    #[test]
    fn write_atomic_replaces_regular_files_and_leaves_no_temporary() {
        let dir = scratch("write");
        let p = dir.join("out.bin");
        write_atomic(&p, b"one", Existing::Refuse).unwrap();
        write_atomic(&p, b"two", Existing::Refuse).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.bin")]);
    }
}
