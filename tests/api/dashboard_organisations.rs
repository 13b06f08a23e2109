//! Dashboard organisations pages, as a browser meets them.
