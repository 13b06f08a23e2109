//! Dashboard campaigns pages, as a browser meets them.
