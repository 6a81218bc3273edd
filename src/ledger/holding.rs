//! How a node holds a register: its role (origin or replica) and, for a replica, the mode of
//! its subscription. Persisted by the store and used by replication and the operator API.

/// How this node holds a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Origin,
    FullReplica,
    ForwardOnly,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Origin => "origin",
            Role::FullReplica => "full-replica",
            Role::ForwardOnly => "forward-only",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "origin" => Some(Role::Origin),
            "full-replica" => Some(Role::FullReplica),
            "forward-only" => Some(Role::ForwardOnly),
            _ => None,
        }
    }
}

/// A subscription's mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    FullReplica,
    ForwardOnly,
}

impl Mode {
    /// Accepts `full-replica`/`forward-only` (also without the dash, any case).
    pub fn parse(text: &str) -> Option<Mode> {
        match text.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "fullreplica" => Some(Mode::FullReplica),
            "forwardonly" => Some(Mode::ForwardOnly),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::FullReplica => "full-replica",
            Mode::ForwardOnly => "forward-only",
        }
    }

    /// How a subscription in this mode holds its register.
    pub fn role(self) -> Role {
        match self {
            Mode::FullReplica => Role::FullReplica,
            Mode::ForwardOnly => Role::ForwardOnly,
        }
    }
}
