//! `ovrun`'s library: what the compiled units run against the engines.
//!
//! - [`cert`]: fetching an engine's CA and warning before it expires.
