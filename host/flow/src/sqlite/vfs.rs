//! The store's files go through SQLite's default VFS, but a commit's log
//! frames reach the kernel in one write rather than two a page.
//!
//! SQLite writes each frame of the log as two `pwrite`s, its 24-byte header
//! and its page: six for a step's commit of three pages, each a system call
//! of 2.3–2.5 µs inside the flows bench on the project's machine (0.7–1 µs
//! in a loop doing nothing else). Here the log's writes are held
//! while they follow one another, and handed on as one when the frame that
//! ends a commit is complete: its header carries the database's size after
//! the commit (`nTruncate`, zero in every other frame's), and its page is
//! the next write. The commit's writes are in the file before SQLite
//! publishes it to readers (the log's index header, written after the
//! frames), and a refused write fails the commit, as before.
//!
//! Held writes are also handed on before any other use of the log file
//! (a read, a sync, its size, a truncation, a file control, its close), and
//! when [`HOLD`] bytes would be held. A header written where the last read was
//! is SQLite rewriting the checksums of frames a transaction wrote twice;
//! it goes straight through. A commit is never padded to a sector: the
//! default VFS declares power-safe overwrite, and the store syncs `NORMAL`.
//! Every other file (the database, its shared-memory index) is the default
//! VFS's own, with nothing in between.

use rusqlite::ffi;
use std::ffi::{CStr, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, Ordering};

/// The VFS's name, for `Connection::open_with_flags_and_vfs`.
pub(super) const NAME: &CStr = c"paddock-log";

/// Held bytes past which the log's writes are handed on anyway (a large
/// transaction, a migration): the most the default VFS writes in one call
/// (it masks a write's length to 17 bits), 15 frames of 8 KiB.
const HOLD: usize = 0x1ffff;

/// A log frame's header.
const FRAME_HEADER: usize = 24;

/// The default VFS, which this one wraps.
static DEFAULT: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(ptr::null_mut());

/// Registers the VFS (once a process); why it could not be.
pub(super) fn register() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // SAFETY: sqlite3_vfs_find and sqlite3_vfs_register take SQLite's
            // own lock; the VFS registered is leaked, so it lives as long as
            // the process, and every function it copies is the default
            // VFS's, called with a VFS carrying the default's `pAppData`.
            unsafe {
                if ffi::sqlite3_initialize() != ffi::SQLITE_OK {
                    return Err("flow store: SQLite did not initialize".to_string());
                }
                let default = ffi::sqlite3_vfs_find(ptr::null());
                if default.is_null() {
                    return Err("flow store: SQLite has no default VFS".to_string());
                }
                DEFAULT.store(default, Ordering::Release);
                let mut ours = *default;
                ours.szOsFile = (std::mem::size_of::<LogFile>() + (*default).szOsFile as usize) as c_int;
                ours.zName = NAME.as_ptr();
                ours.pNext = ptr::null_mut();
                ours.xOpen = Some(open);
                let rc = ffi::sqlite3_vfs_register(Box::leak(Box::new(ours)), 0);
                if rc != ffi::SQLITE_OK {
                    return Err(format!("flow store: SQLite refused the VFS {NAME:?} (code {rc})"));
                }
                Ok(())
            }
        })
        .clone()
}

/// A log file as SQLite holds it: ours, with the default VFS's file after it.
#[repr(C)]
struct LogFile {
    /// SQLite's part: the methods below.
    base: ffi::sqlite3_file,
    /// The default VFS's file, in the bytes after this struct.
    real: *mut ffi::sqlite3_file,
    /// Writes held, one after another from `at`.
    held: Vec<u8>,
    at: i64,
    /// Where the last read began (-1 before any).
    last_read: i64,
    /// The last write was the header of a commit's frame: the next one ends it.
    ends_commit: bool,
    /// The file's path, by which tests count its writes and refuse them.
    #[cfg(test)]
    path: String,
}

impl LogFile {
    /// The default VFS's methods for the file.
    unsafe fn methods(&self) -> &ffi::sqlite3_io_methods {
        // SAFETY: `real` was opened by the default VFS, which set its
        // methods (checked in `open`), and stays open until `close`.
        unsafe { &*(*self.real).pMethods }
    }

    /// Writes `bytes` at `at` in the file.
    unsafe fn write_through(&mut self, bytes: *const c_void, len: usize, at: i64) -> c_int {
        #[cfg(test)]
        if !tests::wrote(&self.path) {
            return ffi::SQLITE_IOERR_WRITE;
        }
        // SAFETY: as in `methods`; SQLite hands writes of an `int`'s length.
        unsafe { (self.methods().xWrite.expect("a file's write"))(self.real, bytes, len as c_int, at) }
    }

    /// Hands the held writes on; the write's outcome (dropped either way,
    /// as SQLite writes a failed transaction's frames again).
    unsafe fn flush(&mut self) -> c_int {
        if self.held.is_empty() {
            return ffi::SQLITE_OK;
        }
        let held = std::mem::take(&mut self.held);
        // SAFETY: `held` is alive for the call.
        let rc = unsafe { self.write_through(held.as_ptr().cast(), held.len(), self.at) };
        self.held = held;
        self.held.clear();
        rc
    }

    unsafe fn write(&mut self, bytes: &[u8], at: i64) -> c_int {
        let header = bytes.len() == FRAME_HEADER;
        if (header && at == self.last_read) || bytes.len() > HOLD {
            // A checksum rewritten (or a write larger than any page):
            // straight through, after what is held.
            self.ends_commit = false;
            // SAFETY: as in `write_through`.
            return match unsafe { self.flush() } {
                ffi::SQLITE_OK => unsafe { self.write_through(bytes.as_ptr().cast(), bytes.len(), at) },
                rc => rc,
            };
        }
        let follows = self.at + self.held.len() as i64 == at;
        if !self.held.is_empty() && (!follows || self.held.len() + bytes.len() > HOLD) {
            // SAFETY: as in `write_through`.
            let rc = unsafe { self.flush() };
            if rc != ffi::SQLITE_OK {
                self.ends_commit = false;
                return rc;
            }
        }
        if self.held.is_empty() {
            self.at = at;
        }
        self.held.extend_from_slice(bytes);
        let ends = std::mem::replace(&mut self.ends_commit, header && bytes[4..8] != [0; 4]);
        // SAFETY: as in `write_through`.
        if ends { unsafe { self.flush() } } else { ffi::SQLITE_OK }
    }
}

/// The file SQLite hands a method, as ours.
unsafe fn log<'a>(file: *mut ffi::sqlite3_file) -> &'a mut LogFile {
    // SAFETY: SQLite hands these methods only files `open` made LogFiles,
    // and uses a file from one thread at a time.
    unsafe { &mut *file.cast::<LogFile>() }
}

/// Opens a log file as ours; any other file as the default VFS's own.
unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let default = DEFAULT.load(Ordering::Acquire);
    // SAFETY: `register` stored the default VFS before registering this
    // one; SQLite allocated `file` with this VFS's `szOsFile` bytes, enough
    // for a LogFile and the default's file after it (a LogFile's size is a
    // multiple of its 8-byte alignment, as a file's must be).
    unsafe {
        let default_open = (*default).xOpen.expect("the default VFS opens files");
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            return default_open(default, name, file, flags, out_flags);
        }
        let ours = file.cast::<LogFile>();
        let real = ours.add(1).cast::<ffi::sqlite3_file>();
        ptr::write(
            ours,
            LogFile {
                base: ffi::sqlite3_file { pMethods: ptr::null() },
                real,
                held: Vec::new(),
                at: 0,
                last_read: -1,
                ends_commit: false,
                #[cfg(test)]
                path: if name.is_null() { String::new() } else { CStr::from_ptr(name).to_string_lossy().into_owned() },
            },
        );
        let rc = default_open(default, name, real, flags, out_flags);
        if (*real).pMethods.is_null() {
            // Not opened: SQLite calls no method of it, not even close.
            ptr::drop_in_place(ours);
            return if rc == ffi::SQLITE_OK { ffi::SQLITE_CANTOPEN } else { rc };
        }
        (*ours).base.pMethods = &METHODS;
        rc
    }
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

/// Calls the default VFS's method `$m` of the file, or answers `$missing`
/// when it has none.
macro_rules! forward {
    ($file:expr, $m:ident, $missing:expr $(, $arg:expr)*) => {{
        let log = log($file);
        match log.methods().$m {
            Some(m) => m(log.real $(, $arg)*),
            None => $missing,
        }
    }};
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: the file is ours (`log`); after its close SQLite never uses
    // it again, so its fields are dropped here.
    unsafe {
        let log = log(file);
        let flushed = log.flush();
        let closed = forward!(file, xClose, ffi::SQLITE_OK);
        ptr::drop_in_place(file.cast::<LogFile>());
        if flushed != ffi::SQLITE_OK { flushed } else { closed }
    }
}

unsafe extern "C" fn read(file: *mut ffi::sqlite3_file, buf: *mut c_void, amt: c_int, at: i64) -> c_int {
    // SAFETY: as in `log` and `LogFile::methods`.
    unsafe {
        let log = log(file);
        let rc = log.flush();
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        log.last_read = at;
        forward!(file, xRead, ffi::SQLITE_IOERR_READ, buf, amt, at)
    }
}

unsafe extern "C" fn write(file: *mut ffi::sqlite3_file, buf: *const c_void, amt: c_int, at: i64) -> c_int {
    // SAFETY: SQLite hands `amt` readable bytes at `buf` for the call.
    unsafe { log(file).write(std::slice::from_raw_parts(buf.cast::<u8>(), amt.max(0) as usize), at) }
}

/// A method that hands the held writes on before the default VFS's.
macro_rules! after_flush {
    ($name:ident, $m:ident, $missing:expr $(, $arg:ident : $ty:ty)*) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: as in `log` and `LogFile::methods`.
            unsafe {
                match log(file).flush() {
                    ffi::SQLITE_OK => forward!(file, $m, $missing $(, $arg)*),
                    rc => rc,
                }
            }
        }
    };
}

after_flush!(truncate, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, size: i64);
after_flush!(sync, xSync, ffi::SQLITE_IOERR_FSYNC, flags: c_int);
after_flush!(file_size, xFileSize, ffi::SQLITE_IOERR_FSTAT, size: *mut i64);
after_flush!(file_control, xFileControl, ffi::SQLITE_NOTFOUND, op: c_int, arg: *mut c_void);

/// A method of the default VFS's, called as it is.
macro_rules! passed {
    ($name:ident -> $ret:ty, $m:ident, $missing:expr $(, $arg:ident : $ty:ty)*) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            // SAFETY: as in `log` and `LogFile::methods`.
            unsafe { forward!(file, $m, $missing $(, $arg)*) }
        }
    };
}

passed!(lock -> c_int, xLock, ffi::SQLITE_IOERR_LOCK, level: c_int);
passed!(unlock -> c_int, xUnlock, ffi::SQLITE_IOERR_UNLOCK, level: c_int);
passed!(check_reserved_lock -> c_int, xCheckReservedLock, ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, out: *mut c_int);
passed!(sector_size -> c_int, xSectorSize, 4096);
passed!(device_characteristics -> c_int, xDeviceCharacteristics, 0);
passed!(shm_map -> c_int, xShmMap, ffi::SQLITE_IOERR_SHMMAP, page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void);
passed!(shm_lock -> c_int, xShmLock, ffi::SQLITE_IOERR_SHMLOCK, offset: c_int, n: c_int, flags: c_int);
passed!(shm_barrier -> (), xShmBarrier, ());
passed!(shm_unmap -> c_int, xShmUnmap, ffi::SQLITE_OK, delete: c_int);
passed!(fetch -> c_int, xFetch, { *out = ptr::null_mut(); ffi::SQLITE_OK }, at: i64, amt: c_int, out: *mut *mut c_void);
passed!(unfetch -> c_int, xUnfetch, ffi::SQLITE_OK, at: i64, p: *mut c_void);

#[cfg(test)]
mod tests;
