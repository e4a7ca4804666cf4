//! The `jidstore` command-line tool.

fn main() {}
