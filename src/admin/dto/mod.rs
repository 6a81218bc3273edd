//! JSON bodies of the admin API, shared by the server (`admin/`) and the typed client
//! (`client/`). Field names are camelCase and part of the contract scripts rely on: change
//! them only with a version note. One file per part of the API; all are re-exported here.

mod node;
mod peers;
mod registers;

pub use node::*;
pub use peers::*;
pub use registers::*;
