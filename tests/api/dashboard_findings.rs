//! Dashboard findings pages, as a browser meets them.
