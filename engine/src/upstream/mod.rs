//! Upstream groups on one worker: balancing (`balance`) and passive health
//! (`health`). Built from each config snapshot; state is per core, in
//! `Cell`s, with no locks.

pub mod balance;
pub mod health;

pub use balance::{Group, Key};
