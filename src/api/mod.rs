//! The admin API's JSON bodies: one home for the types the server (`admin/`), the typed client
//! (`client/`), the CLI (`cli/`, whose `schema.rs` derives their JSON Schemas), the fuzz targets
//! and the tests share. Field names are camelCase and part of the contract scripts and the
//! platform's clients rely on: change them only with a version note.
//!
//! Plain data only: this module imports none of the edges, and the translation from domain
//! values stays with the edge that answers (`admin/`), so it sits below every module that uses
//! it. One file per part of the API; all are re-exported here.

mod node;
mod peers;
mod platform;
mod registers;

pub use node::*;
pub use peers::*;
pub use platform::*;
pub use registers::*;
