//! placeholder until the parsers land
