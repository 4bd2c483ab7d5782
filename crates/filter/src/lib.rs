//! The ISP's protective DNS filter: it follows the hub's policy zones as a
//! secondary, matches every query against them, and answers.
//!
//! This part is the zones: [`zones::ZoneManager`] follows each configured zone from
//! its primary (AXFR, IXFR, TSIG, NOTIFY, SOA timers), keeps the last good copy on
//! disk ([`state`]) and loads it at start, and hands every change to the rest of the
//! filter through a [`zones::ZoneSink`]. The DNS front and the matcher plug in there.

pub mod state;
pub mod zones;

pub use state::{OwnerDelta, OwnerRecords, StateError};
pub use zones::{
    OnExpire, Refreshed, ZoneEvent, ZoneManager, ZoneSink, ZoneStatus, ZonesConfig, ZonesError,
};
