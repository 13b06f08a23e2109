//! Registry imports: parsers that read files into a [`snapshot::Snapshot`]
//! ([`ripe`] over [`rpsl`], [`csv_files`]), and [`apply`], which makes the
//! database agree with a snapshot incrementally, in one transaction.

pub mod apply;
pub mod cli;
pub mod csv_files;
pub mod input;
pub mod ranges;
pub mod ripe;
pub mod rpsl;
pub mod snapshot;
