//! Dashboard admin pages, as a browser meets them.
