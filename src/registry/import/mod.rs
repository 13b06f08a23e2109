//! Registry imports: parsers that read files into a [`snapshot::Snapshot`],
//! and [`apply`], which makes the database agree with it incrementally.

pub mod cli;
pub mod snapshot;
