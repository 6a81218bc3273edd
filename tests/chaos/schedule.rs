//! The fault schedule, drawn from a seed so that a failing schedule can be replayed
//! (`CHAOS_SEED=<seed> cargo test --test chaos`). Every kind of fault occurs once per run, in
//! an order and on nodes the seed picks.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

#[derive(Clone, Debug)]
pub enum Fault {
    /// The nodes split in two groups that cannot reach each other.
    Partition(BTreeSet<usize>),
    /// Packets from `from` to `to` are lost; the other way works.
    OneWay { from: usize, to: usize },
    /// 5 % of the packets to and from every node are lost.
    Loss,
    /// 50 ms ± 20 ms on everything `node` sends: delay, jitter and reordering.
    Delay(usize),
    /// kill -9, then a restart on the same data.
    Crash(usize),
    /// SIGSTOP, then SIGCONT: a process that freezes.
    Freeze(usize),
    /// The data disk of the node on the small filesystem fills up.
    DiskFull,
}

#[derive(Clone, Debug)]
pub struct Step {
    pub fault: Fault,
    /// How long the fault lasts.
    pub lasts: Duration,
    /// Quiet time after it heals, before the next.
    pub then: Duration,
}

pub fn draw(seed: u64, nodes: usize) -> Vec<Step> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let pick = |rng: &mut rand::rngs::StdRng| rng.gen_range(0..nodes);
    let mut members: Vec<usize> = (0..nodes).collect();
    members.shuffle(&mut rng);
    let side: BTreeSet<usize> = members[..rng.gen_range(1..nodes)].iter().copied().collect();
    let from = pick(&mut rng);
    let to = (from + rng.gen_range(1..nodes)) % nodes;
    let mut faults = vec![
        Fault::Partition(side),
        Fault::OneWay { from, to },
        Fault::Loss,
        Fault::Delay(pick(&mut rng)),
        Fault::Crash(pick(&mut rng)),
        Fault::Freeze(pick(&mut rng)),
        Fault::DiskFull,
    ];
    faults.shuffle(&mut rng);
    faults
        .into_iter()
        .map(|fault| Step {
            fault,
            lasts: Duration::from_millis(rng.gen_range(2_000..5_000)),
            then: Duration::from_millis(rng.gen_range(500..2_000)),
        })
        .collect()
}
