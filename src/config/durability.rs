//! How far a commit goes before the store calls it done (`durability`).

use std::fmt;

/// What an acknowledged write survives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// A commit is synced to disk before it succeeds: a power cut loses nothing acknowledged
    /// (SQLite `synchronous=FULL`; PostgreSQL's own `synchronous_commit`, left as the server
    /// has it). Commits are grouped, so the sync is paid once per group, not per write.
    #[default]
    Full,
    /// SQLite `synchronous=NORMAL`: in WAL mode a commit survives a crash of the process, but
    /// the last commits before a power cut or kernel crash can roll back, acknowledged or not.
    /// PostgreSQL sessions use `synchronous_commit=off`, which risks the same.
    Fast,
}

impl Durability {
    pub const NAMES: [&str; 2] = ["full", "fast"];

    pub fn name(self) -> &'static str {
        match self {
            Durability::Full => "full",
            Durability::Fast => "fast",
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `durability` value that names no setting.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a durability setting (one of: full, fast)")]
pub struct UnknownDurability(String);

impl std::str::FromStr for Durability {
    type Err = UnknownDurability;

    fn from_str(text: &str) -> Result<Durability, UnknownDurability> {
        match text {
            "full" => Ok(Durability::Full),
            "fast" => Ok(Durability::Fast),
            other => Err(UnknownDurability(other.to_string())),
        }
    }
}
