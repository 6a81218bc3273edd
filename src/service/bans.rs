//! An operator ban and its guards. The peer domain refuses bans that turn against the node
//! itself; this service adds the rule that needs the registers too: a ban that would leave a
//! subscribed register without any source is refused unless forced.

use std::time::Duration;

use crate::clock::parse_duration;
use crate::peers::{BanOutcome, BanSource, PeerError, PeerManager, bans};
use crate::replication::Registers;

/// What an operator asks for.
#[derive(Clone, Debug, Default)]
pub(crate) struct BanOrder {
    /// A peer ID (or unique prefix), IP address or CIDR subnet.
    pub target: String,
    pub reason: Option<String>,
    /// How long, as operator text (`90s`, `2h`); none or blank: until unbanned.
    pub duration: Option<String>,
    /// Skip the guards (self-ban, sole source).
    pub force: bool,
}

/// Why a ban was not imposed.
#[derive(Debug, thiserror::Error)]
pub enum BanError {
    #[error("{0}")]
    Duration(String),
    #[error(
        "{target} is the only source of subscribed register(s) {}; use --force to ban anyway",
        .registers.join(", ")
    )]
    SoleSource {
        target: String,
        registers: Vec<String>,
    },
    #[error(transparent)]
    Peer(#[from] PeerError),
}

/// Imposes an operator ban after its guards (unless forced).
pub(crate) async fn ban(
    peers: &PeerManager,
    registers: &Registers,
    order: BanOrder,
) -> Result<BanOutcome, BanError> {
    let duration = duration(order.duration.as_deref())?;
    let target = peers.parse_target(&order.target)?;
    if !order.force {
        peers.check_not_self(&target)?;
        let covered = peers.peers_matching(&target);
        let cut_off = registers.sole_source_of(&covered);
        if !cut_off.is_empty() {
            return Err(BanError::SoleSource {
                target: target.key(),
                registers: cut_off,
            });
        }
    }
    Ok(peers
        .ban(target, order.reason, duration, BanSource::Manual)
        .await?)
}

pub(crate) fn duration(text: Option<&str>) -> Result<Option<Duration>, BanError> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => {
            let duration = parse_duration(text).map_err(|e| BanError::Duration(e.to_string()))?;
            bans::check_duration(duration).map_err(|e| BanError::Duration(e.to_string()))?;
            Ok(Some(duration))
        }
    }
}
