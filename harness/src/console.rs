//! Printing for the person at the console. The console is a courtesy: a closed stdout or
//! stderr (`srvlab serve | head -3`, a terminal that went away) must never stop the world,
//! lose a recorded event or panic, so every line srvlab prints goes through here and a failed
//! write is dropped. `println!` and friends panic on a closed pipe; clippy's `print_stdout` and
//! `print_stderr` lints (denied in lib.rs and main.rs) keep them out of shipped code.

use std::fmt;
use std::io::{self, Write};

/// One line to stdout, flushed (a person watches it live, a pipe may read it at once).
pub fn line(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let _ = out.write_fmt(args);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Text to stdout without an end of line (a countdown redrawn with `\r`), flushed.
pub fn partial(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let _ = out.write_fmt(args);
    let _ = out.flush();
}

/// One line to stderr: errors and warnings.
pub fn error_line(args: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args);
    let _ = err.write_all(b"\n");
}

/// `println!` that survives a closed stdout.
#[macro_export]
macro_rules! say {
    () => {
        $crate::console::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::console::line(format_args!($($arg)*))
    };
}

/// `eprintln!` that survives a closed stderr.
#[macro_export]
macro_rules! tell {
    ($($arg:tt)*) => {
        $crate::console::error_line(format_args!($($arg)*))
    };
}
