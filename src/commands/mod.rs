//! One function per command: takes parsed arguments, returns what to print.
