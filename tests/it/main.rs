//! The one integration test binary: runs the real binaries on fixtures and snapshots what a
//! person or CI would read.

mod normalize;
mod support;
mod validate;
