//! mediafs: a HighLevel location's media library as a filesystem.
//!
//! Layers, data flowing one way: [`api`] (the client of the service),
//! [`emulator`] (a stand-in for the service), [`cli`] (the command line).

pub mod api;
pub mod atomic_file;
pub mod cache_lock;
pub mod cli;
pub mod emulator;
pub mod fs;
pub mod fuse;
