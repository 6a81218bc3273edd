//! Delay, jitter and reordering without netem (this kernel has none): packets that an
//! iptables NFQUEUE rule sends to queue 0 of a namespace are held by a thread that entered
//! that namespace, each for `delay` ± `jitter`, and let through in the order their time comes,
//! which reorders them.

use std::fs::File;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

/// More than this many held packets means the queue is not being drained: the thread stops.
const MAX_HELD: usize = 100_000;

pub struct Delayer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<u64, String>>,
}

impl Delayer {
    /// Starts once the queue is bound (so the rule that feeds it can be added next).
    pub fn start(
        ns: &str,
        delay: Duration,
        jitter: Duration,
        seed: u64,
    ) -> Result<Delayer, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let ns = ns.to_string();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let queue = bind(&ns);
            let failed = queue.as_ref().err().cloned();
            let _ = ready_tx.send(failed);
            serve(queue?, delay, jitter, seed, &flag)
        });
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(None) => Ok(Delayer { stop, thread }),
            Ok(Some(e)) => Err(e),
            Err(e) => Err(format!("the delayer did not start: {e}")),
        }
    }

    /// Lets every held packet go and returns how many packets were delayed.
    pub fn stop(self) -> Result<u64, String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| "the delayer thread panicked".to_string())?
    }
}

/// Moves the calling thread (only it, and the threads it starts later) into network
/// namespace `ns`.
pub fn enter(ns: &str) -> Result<(), String> {
    let file = File::open(format!("/run/netns/{ns}")).map_err(|e| format!("open {ns}: {e}"))?;
    rustix::thread::move_into_link_name_space(
        file.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| format!("setns {ns}: {e}"))
}

/// Enters `ns` and binds its queue 0.
fn bind(ns: &str) -> Result<nfq::Queue, String> {
    enter(ns)?;
    let mut queue = nfq::Queue::open().map_err(|e| format!("nfqueue open: {e}"))?;
    queue.bind(0).map_err(|e| format!("nfqueue bind: {e}"))?;
    // Only the verdict matters, not the bytes.
    queue
        .set_copy_range(0, 0)
        .map_err(|e| format!("nfqueue copy range: {e}"))?;
    queue
        .set_queue_max_len(0, 20_000)
        .map_err(|e| format!("nfqueue length: {e}"))?;
    queue.set_nonblocking(true);
    Ok(queue)
}

fn serve(
    mut queue: nfq::Queue,
    delay: Duration,
    jitter: Duration,
    seed: u64,
    stop: &AtomicBool,
) -> Result<u64, String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut held: Vec<(Instant, nfq::Message)> = Vec::new();
    let mut delayed = 0u64;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let now = Instant::now();
        // Release what is due (everything when stopping), earliest first.
        held.sort_by_key(|(at, _)| *at);
        let due = if stopping {
            held.len()
        } else {
            held.partition_point(|(at, _)| *at <= now)
        };
        for (_, message) in held.drain(..due) {
            queue
                .verdict(message)
                .map_err(|e| format!("verdict: {e}"))?;
        }
        if stopping {
            return Ok(delayed);
        }
        let mut got_any = false;
        loop {
            match queue.recv() {
                Ok(mut message) => {
                    message.set_verdict(nfq::Verdict::Accept);
                    let spread = jitter.as_micros() as i64;
                    let offset = if spread > 0 {
                        rng.gen_range(-spread..=spread)
                    } else {
                        0
                    };
                    let wait = (delay.as_micros() as i64 + offset).max(0) as u64;
                    held.push((now + Duration::from_micros(wait), message));
                    delayed += 1;
                    got_any = true;
                    if held.len() > MAX_HELD {
                        return Err(format!("more than {MAX_HELD} packets held"));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("nfqueue recv: {e}")),
            }
        }
        if !got_any {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}
