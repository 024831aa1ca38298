//! The HighLevel Media Storage API: wire models, errors, limits, and the client.

pub mod agency;
pub mod client;
pub mod error;
mod limiter;
pub mod limits;
pub mod mime;
pub mod models;
pub mod rate_window;
mod segments;
pub mod token;

pub use agency::{AgencyClient, AgencyConfig, InstalledLocation};
pub use client::{AtOnce, ByteRange, ClientConfig, MediaClient, RawAnswer};
pub use error::{ApiError, ApiResult};
pub use models::{DeleteStatus, ListQuery, MediaObject, ObjectKind};
pub use segments::Segments;
pub use token::{AgencyLocation, Secret, TokenSource, UserType};
