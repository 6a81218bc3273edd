//! The chaos network: one namespace per node, joined through a bridge in a namespace of its
//! own. Addresses are in 10.199.0.0/24 and exist only inside those namespaces; there is no
//! default route, so nothing leaves them. The harness talks to the nodes from the bridge's
//! namespace (the bridge holds `HARNESS_IP`).
//!
//! Faults: partitions and loss are nftables rules on the bridge's forward hook (so the sender
//! sees silent loss, not EPERM); delay is an NFQUEUE rule in a node's own namespace, served by
//! a [`Delayer`]. Every namespace goes when the `Net` is dropped, also after a panic.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::delay::Delayer;

pub const HARNESS_IP: &str = "10.199.0.254";
/// The peer and admin ports of every node (each node has its own address).
pub const PEER_PORT: u16 = 4000;
pub const ADMIN_PORT: u16 = 5080;

/// One fault on the bridge.
#[derive(Clone, Debug)]
pub enum Rule {
    /// Nothing from a node of `from` reaches a node of `to`.
    Block {
        from: BTreeSet<usize>,
        to: BTreeSet<usize>,
    },
    /// `percent` of the packets to and from `node` are dropped.
    Loss { node: usize, percent: u32 },
}

pub struct Net {
    prefix: String,
    nodes: usize,
    created: Vec<String>,
    delays: Vec<Option<Delayer>>,
}

impl Net {
    /// Builds the namespaces, the bridge and the links. Namespaces left by an earlier run that
    /// was killed (their owner process is gone) are removed first.
    pub fn create(nodes: usize) -> Result<Net, String> {
        remove_stale();
        let prefix = format!("spchaos{}", std::process::id());
        let mut net = Net {
            prefix,
            nodes,
            created: Vec::new(),
            delays: (0..nodes).map(|_| None).collect(),
        };
        let br = net.bridge_ns();
        net.add_ns(&br)?;
        run(&["ip", "-n", &br, "link", "set", "lo", "up"])?;
        run(&["ip", "-n", &br, "link", "add", "br0", "type", "bridge"])?;
        run(&[
            "ip",
            "-n",
            &br,
            "addr",
            "add",
            &format!("{HARNESS_IP}/24"),
            "dev",
            "br0",
        ])?;
        run(&["ip", "-n", &br, "link", "set", "br0", "up"])?;
        for i in 0..nodes {
            let ns = net.node_ns(i);
            net.add_ns(&ns)?;
            let port = format!("v{i}");
            run(&[
                "ip", "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ])?;
            run(&["ip", "-n", &br, "link", "set", &port, "master", "br0", "up"])?;
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
            let cidr = format!("{}/24", node_ip(i));
            run(&["ip", "-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
        }
        nft(
            &br,
            "table bridge chaos {\n chain forward { type filter hook forward priority 0; policy accept; }\n}\n",
        )?;
        Ok(net)
    }

    pub fn bridge_ns(&self) -> String {
        format!("{}-br", self.prefix)
    }

    pub fn node_ns(&self, i: usize) -> String {
        format!("{}-n{i}", self.prefix)
    }

    fn add_ns(&mut self, ns: &str) -> Result<(), String> {
        run(&["ip", "netns", "add", ns])?;
        self.created.push(ns.to_string());
        Ok(())
    }

    /// Replaces the bridge's fault rules with `rules` (an empty list heals the network).
    pub fn set_rules(&self, rules: &[Rule]) -> Result<(), String> {
        let mut script = String::from("flush chain bridge chaos forward\n");
        for rule in rules {
            match rule {
                Rule::Block { from, to } => {
                    for a in from {
                        for b in to {
                            script.push_str(&format!(
                                "add rule bridge chaos forward iifname \"v{a}\" oifname \"v{b}\" drop\n"
                            ));
                        }
                    }
                }
                Rule::Loss { node, percent } => {
                    for dir in ["iifname", "oifname"] {
                        script.push_str(&format!(
                            "add rule bridge chaos forward {dir} \"v{node}\" numgen random mod 100 < {percent} drop\n"
                        ));
                    }
                }
            }
        }
        nft(&self.bridge_ns(), &script)
    }

    /// Delays every packet `node` sends to another node by `delay` ± `jitter` (so packets
    /// also arrive out of order). Traffic to the harness is not delayed.
    pub fn delay(
        &mut self,
        node: usize,
        delay: Duration,
        jitter: Duration,
        seed: u64,
    ) -> Result<(), String> {
        self.undelay(node)?;
        let ns = self.node_ns(node);
        // The queue is bound before the rule sends packets to it; `--queue-bypass` lets
        // packets through should the delayer be gone.
        self.delays[node] = Some(Delayer::start(&ns, delay, jitter, seed)?);
        let iptables = [
            "ip",
            "netns",
            "exec",
            &ns,
            "iptables-legacy",
            "-A",
            "OUTPUT",
            "-d",
        ];
        run(&[&iptables[..], &[HARNESS_IP, "-j", "ACCEPT"]].concat())?;
        run(&[
            &iptables[..],
            &[
                "10.199.0.0/24",
                "-j",
                "NFQUEUE",
                "--queue-num",
                "0",
                "--queue-bypass",
            ],
        ]
        .concat())
    }

    /// Ends `node`'s delay: the rule goes first, then what is held is released at once.
    pub fn undelay(&mut self, node: usize) -> Result<u64, String> {
        let Some(delayer) = self.delays[node].take() else {
            return Ok(0);
        };
        let ns = self.node_ns(node);
        run(&[
            "ip",
            "netns",
            "exec",
            &ns,
            "iptables-legacy",
            "-F",
            "OUTPUT",
        ])?;
        delayer.stop()
    }

    /// Removes every fault.
    pub fn heal(&mut self) -> Result<(), String> {
        self.set_rules(&[])?;
        for node in 0..self.nodes {
            self.undelay(node)?;
        }
        Ok(())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for node in 0..self.nodes {
            if let Some(delayer) = self.delays[node].take() {
                let _ = delayer.stop();
            }
        }
        for ns in self.created.drain(..).rev() {
            if let Err(e) = run(&["ip", "netns", "del", &ns]) {
                eprintln!("warning: {e}");
            }
        }
    }
}

pub fn node_ip(i: usize) -> String {
    format!("10.199.0.{}", i + 1)
}

/// Runs a command; its stderr is the error.
pub fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Applies an nftables script inside `ns`, atomically.
fn nft(ns: &str, script: &str) -> Result<(), String> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("nft stdin: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft in {ns}: {}\n{script}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Deletes chaos namespaces whose creating process no longer runs.
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix("spchaos") else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(&["ip", "netns", "del", name]);
        }
    }
}
