//! Upstream groups on one worker: balancing (`balance`), passive health
//! (`health`) and idle keep-alive connections (`pool`). Built from each config snapshot; state is per core, in
//! `Cell`s, with no locks.

pub mod balance;
pub mod health;
pub mod pool;

pub use balance::{Group, Key};
