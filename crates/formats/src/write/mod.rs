//! Writers for the formats resolvers and partners load.
//!
//! Every writer takes normalised indicators (the hub publishes only what it has
//! judged) and writes text that this crate's reader for the same format reads back to
//! the same set (tested in each module).

pub mod csv;
pub mod rpz;
pub mod text;
