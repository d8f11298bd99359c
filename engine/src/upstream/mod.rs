//! Upstream groups on one worker: balancing (`balance`), passive health
//! (`health`) and idle keep-alive connections (`pool`). Built from each config snapshot; state is per core, in
//! `Cell`s, with no locks.
//!
//! Active health is the process's: the checker thread (`checker`, with
//! the pure parts in `check`) writes each server's [`verdict::Verdict`],
//! which every worker's groups read at each pick.

pub mod balance;
pub mod check;
pub mod checker;
pub mod health;
pub mod pool;
pub mod verdict;

pub use balance::{Group, Key};
