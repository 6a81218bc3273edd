//! The EXAMPLES section of every man page: commands an operator runs, each with a line that
//! says what it does. Kept apart from the renderer in `manpages.rs`, which must find an entry
//! here for every page (its test says which page has none).

/// Examples per page (by the page's name), as (what it does, the command).
pub(super) const EXAMPLES: &[(&str, &[(&str, &str)])] = &[
    (
        "sorcha-peer",
        &[
            (
                "Run a node that joins the network through a seed:",
                "sorcha-peer serve --name node-1 --seed 192.0.2.10:5000",
            ),
            (
                "Show the local node, then its connected peers:",
                "sorcha-peer status",
            ),
            ("", "sorcha-peer peers list --state connected"),
            (
                "Ban a misbehaving peer by ID prefix for a week:",
                "sorcha-peer peers ban 3fa9 --reason 'served bad dockets' --duration 7d",
            ),
            (
                "Replicate a register and wait until it has caught up:",
                "sorcha-peer registers subscribe orders --mode full-replica --wait",
            ),
            (
                "In a script: fail when this node is more than 10 dockets behind another:",
                "sorcha-peer lag --against 192.0.2.10:5000 --max-lag 10 -q",
            ),
        ],
    ),
    (
        "sorcha-peer-serve",
        &[
            (
                "Run a node on the embedded SQLite default:",
                "sorcha-peer serve",
            ),
            (
                "Join through two seeds, with a name for operators:",
                "sorcha-peer serve --name eu-1 --seed a.example:5000 --seed b.example:5000",
            ),
            (
                "Store on PostgreSQL, logs as JSON lines:",
                "sorcha-peer serve --database-url postgres://peer@db/peer --log-format json",
            ),
            (
                "Configure from a file, one key overridden by the environment:",
                "SORCHA_PEER_HEARTBEAT_INTERVAL=5s sorcha-peer serve --config /etc/sorcha-peer.toml",
            ),
        ],
    ),
    (
        "sorcha-peer-status",
        &[
            ("", "sorcha-peer status"),
            (
                "The peer counts only, for a script:",
                "sorcha-peer status -o json | jq .peers",
            ),
        ],
    ),
    (
        "sorcha-peer-peers-list",
        &[
            ("", "sorcha-peer peers list --state connected"),
            (
                "Every column, IDs in full:",
                "sorcha-peer peers list -o wide",
            ),
        ],
    ),
    (
        "sorcha-peer-peers-get",
        &[
            (
                "Any unique prefix of a peer ID will do:",
                "sorcha-peer peers get 3fa9",
            ),
            (
                "So will the name a peer gives itself (unless another peer has it too):",
                "sorcha-peer peers get node-2",
            ),
        ],
    ),
    (
        "sorcha-peer-peers-ban",
        &[
            (
                "A peer, for a week:",
                "sorcha-peer peers ban 3fa9 --reason 'served bad dockets' --duration 7d",
            ),
            (
                "A whole subnet, until unbanned:",
                "sorcha-peer peers ban 198.51.100.0/24 --reason scanner",
            ),
        ],
    ),
    (
        "sorcha-peer-peers-unban",
        &[("", "sorcha-peer peers unban 198.51.100.0/24")],
    ),
    (
        "sorcha-peer-peers-reset",
        &[("", "sorcha-peer peers reset 3fa9")],
    ),
    (
        "sorcha-peer-peers-bans",
        &[("", "sorcha-peer peers bans -o json")],
    ),
    (
        "sorcha-peer-peers-connect",
        &[(
            "Dial a node once; prints the peer ID it answered as:",
            "sorcha-peer peers connect 192.0.2.10:5000",
        )],
    ),
    (
        "sorcha-peer-peers-disconnect",
        &[(
            "Close the session (no ban; it may come back):",
            "sorcha-peer peers disconnect node-2",
        )],
    ),
    (
        "sorcha-peer-registers-create",
        &[("", "sorcha-peer registers create orders --public")],
    ),
    (
        "sorcha-peer-registers-subscribe",
        &[
            (
                "Replicate the whole chain and show progress until done:",
                "sorcha-peer registers subscribe orders --mode full-replica --wait",
            ),
            (
                "Follow new dockets only:",
                "sorcha-peer registers subscribe orders --mode forward-only",
            ),
        ],
    ),
    (
        "sorcha-peer-registers-unsubscribe",
        &[(
            "Stop replicating and delete the replicated data:",
            "sorcha-peer registers unsubscribe orders --purge",
        )],
    ),
    (
        "sorcha-peer-tx-submit",
        &[
            (
                "A payload from a file:",
                "sorcha-peer tx submit orders order-1042.json",
            ),
            (
                "One transaction per input line:",
                "sorcha-peer tx submit orders --lines < events.ndjson",
            ),
        ],
    ),
    (
        "sorcha-peer-lag",
        &[(
            "Exit 1 when more than 10 dockets behind (for cron or monitoring):",
            "sorcha-peer lag --against 192.0.2.10:5000 --max-lag 10",
        )],
    ),
    (
        "sorcha-peer-completions",
        &[(
            "",
            "sorcha-peer completions bash > ~/.local/share/bash-completion/completions/sorcha-peer",
        )],
    ),
    (
        "sorcha-peer-config-default",
        &[(
            "Start a configuration file from the defaults:",
            "sorcha-peer config default > /etc/sorcha-peer.toml",
        )],
    ),
    (
        "sorcha-peer-version",
        &[("", "sorcha-peer version -o json")],
    ),
    (
        "sorcha-peer-config",
        &[(
            "Start a configuration file with every key at its default, annotated:",
            "sorcha-peer config default > /etc/sorcha-peer/sorcha-peer.toml",
        )],
    ),
    (
        "sorcha-peer-doctor",
        &[
            ("Check the local node, item by item:", "sorcha-peer doctor"),
            (
                "In a script: the items that fail, with their fixes:",
                "sorcha-peer doctor -o json | jq -r '.findings[] | select(.verdict == \"failing\") | .item + \": \" + .fix'",
            ),
        ],
    ),
    (
        "sorcha-peer-schema",
        &[
            ("Which schemas there are:", "sorcha-peer schema"),
            (
                "What every field of `peers list -o json` means:",
                "sorcha-peer schema peers-list | jq '.[\"$defs\"].PeerDto.properties'",
            ),
        ],
    ),
    (
        "sorcha-peer-events",
        &[
            (
                "Follow what happens on the node, as it happens:",
                "sorcha-peer events --follow",
            ),
            (
                "The last bans and disconnections of one peer, for a script:",
                "sorcha-peer events --type audit --peer 3fa9 -o json | jq -c 'select(.type == \"peerBanned\")'",
            ),
        ],
    ),
    (
        "sorcha-peer-peers",
        &[
            (
                "The connected peers, best first:",
                "sorcha-peer peers list --state connected",
            ),
            (
                "Why one peer's quality score is what it is:",
                "sorcha-peer peers get 3fa9",
            ),
        ],
    ),
    (
        "sorcha-peer-registers",
        &[
            (
                "What this node holds, and what its peers offer:",
                "sorcha-peer registers list",
            ),
            ("", "sorcha-peer registers available"),
        ],
    ),
    (
        "sorcha-peer-registers-available",
        &[(
            "The public registers peers advertise that this node does not hold:",
            "sorcha-peer registers available -o json | jq -r '.[] | select(.localRole == null) | .registerId'",
        )],
    ),
    (
        "sorcha-peer-registers-list",
        &[(
            "Each register held here with its head and pending transactions:",
            "sorcha-peer registers list -o wide",
        )],
    ),
    (
        "sorcha-peer-registers-purge",
        &[(
            "Stop replicating a register, then delete what was replicated:",
            "sorcha-peer registers unsubscribe orders && sorcha-peer registers purge orders",
        )],
    ),
    (
        "sorcha-peer-registers-subscriptions",
        &[(
            "In a script: the subscriptions that report an error:",
            "sorcha-peer registers subscriptions -o json | jq -r '.[] | select(.syncState == \"Error\") | .registerId'",
        )],
    ),
    (
        "sorcha-peer-tls",
        &[
            (
                "Make a CA, then a certificate for a node's key:",
                "sorcha-peer tls ca --out /etc/sorcha-peer/ca",
            ),
            (
                "",
                "sorcha-peer tls issue --ca /etc/sorcha-peer/ca --data-dir /var/lib/sorcha-peer",
            ),
        ],
    ),
    (
        "sorcha-peer-tls-ca",
        &[(
            "A CA valid for ten years, in a directory only root can read:",
            "sorcha-peer tls ca --out /etc/sorcha-peer/ca --name 'Example network CA' --days 3650",
        )],
    ),
    (
        "sorcha-peer-tls-issue",
        &[(
            "A one-year certificate for the node whose data is in /var/lib/sorcha-peer:",
            "sorcha-peer tls issue --ca /etc/sorcha-peer/ca --data-dir /var/lib/sorcha-peer --days 365",
        )],
    ),
    (
        "sorcha-peer-tls-revoke",
        &[(
            "Revoke a node's certificate; every node re-reads crl.pem and disconnects it:",
            "sorcha-peer tls revoke --ca /etc/sorcha-peer/ca /var/lib/sorcha-peer/node-cert.pem",
        )],
    ),
    (
        "sorcha-peer-tx",
        &[
            (
                "Submit a file as one transaction:",
                "sorcha-peer tx submit orders < order.json",
            ),
            (
                "Then see whether it is sealed yet:",
                "sorcha-peer tx get orders 9c1e0f4a",
            ),
        ],
    ),
    (
        "sorcha-peer-tx-get",
        &[(
            "In a script: the version a transaction was sealed at (null while pending):",
            "sorcha-peer tx get orders 9c1e0f4a -o json | jq .version",
        )],
    ),
];
