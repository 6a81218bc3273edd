
use builtin;
use str;

set edit:completion:arg-completer[sorcha-peer] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'sorcha-peer'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'sorcha-peer'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand serve 'Run a peer node in the foreground'
            cand status 'Show the node''s identity, addresses, storage and peer counts'
            cand doctor 'Check what an operator would check by hand (readiness, storage and disk space, clock, address, certificate, replication, risky settings, file permissions); each item ok, unknown, warning or failing with its fix. Exit 1 when an item fails'
            cand schema 'The JSON Schema of an `-o json` output or an admin API body (without NAME: the list), with every field described'
            cand peers 'Inspect and manage peers: list, get, connect, disconnect, ban, unban, reset, bans'
            cand registers 'Registers: create, list, subscribe to, unsubscribe from, purge'
            cand tx 'Transactions: submit and look up'
            cand lag 'How far this node is behind another node, per register (exit 1 beyond --max-lag)'
            cand events 'Print the node''s recent events (peers, bans, replication, storage); --follow streams them. With -o json: JSON Lines, one compact object per event (`jq` reads them as a stream)'
            cand config 'Configuration helpers'
            cand tls 'Certificates for peer_tls = "ca": make a CA, issue a node certificate, revoke one'
            cand version 'Print this binary''s version and the commit it was built from'
            cand completions 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sorcha-peer;serve'= {
            cand --config 'TOML configuration file (see `sorcha-peer config default`)'
            cand --listen 'Peer protocol address [default: 0.0.0.0:5000]'
            cand --admin-listen 'Admin API address [default: 127.0.0.1:5080]'
            cand --peer-tls 'How peer connections are protected [default: node-key]'
            cand --advertise-address 'Address peers should dial to reach this node [default: discovered, see README "Reachability"]'
            cand --seed 'A node to join through (repeatable)'
            cand --database-url 'postgres://user:password@host/db to store on PostgreSQL [default: SQLite in the data dir]'
            cand --durability 'What an acknowledged write survives [default: full]'
            cand --name 'A label for operators (not an identity)'
            cand --platform-listen 'Serve the Sorcha platform''s gRPC services on this address [default: off]'
            cand --log-level 'Log filter: a level or EnvFilter directives, e.g. info,sorcha_peer=debug [default: info]'
            cand --log-format 'Log line format [default: text]'
            cand --otlp-endpoint 'Send OpenTelemetry traces to this OTLP/gRPC collector, e.g. http://127.0.0.1:4317'
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;status'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;doctor'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;schema'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;peers'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List known peers'
            cand get 'Show one peer in detail, including why its quality score is what it is'
            cand ban 'Ban a peer (by ID, unique ID prefix or name), or every peer at an IP address or CIDR subnet'
            cand unban 'Lift a ban'
            cand reset 'Set a peer''s failure count and penalties to zero (reports the previous count)'
            cand bans 'List bans in force, with time remaining'
            cand connect 'Dial a node once, now, and print the peer ID reached (or say why not)'
            cand disconnect 'Close the session with a peer without banning it'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sorcha-peer;peers;list'= {
            cand --state 'Only peers in this state'
            cand --limit 'Show at most N peers'
            cand --sort 'Order of the list'
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -w 'Keep the list on screen, redrawn when peers connect, go or are banned (and every 2s), until Ctrl-C'
            cand --watch 'Keep the list on screen, redrawn when peers connect, go or are banned (and every 2s), until Ctrl-C'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;peers;get'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;peers;ban'= {
            cand --reason 'Why (shown in `peers bans` and `peers get`)'
            cand --duration 'How long, e.g. 30m, 1h, 7d; at most 100y [default: until unbanned]'
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand --force 'Ban even if it is the only source of an active subscription, this node''s own ID or address, or a subnet that covers almost everyone (shorter than /8, or /16 for IPv6)'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;peers;unban'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;peers;reset'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;peers;bans'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;peers;connect'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;peers;disconnect'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;peers;help'= {
            cand list 'List known peers'
            cand get 'Show one peer in detail, including why its quality score is what it is'
            cand ban 'Ban a peer (by ID, unique ID prefix or name), or every peer at an IP address or CIDR subnet'
            cand unban 'Lift a ban'
            cand reset 'Set a peer''s failure count and penalties to zero (reports the previous count)'
            cand bans 'List bans in force, with time remaining'
            cand connect 'Dial a node once, now, and print the peer ID reached (or say why not)'
            cand disconnect 'Close the session with a peer without banning it'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sorcha-peer;peers;help;list'= {
        }
        &'sorcha-peer;peers;help;get'= {
        }
        &'sorcha-peer;peers;help;ban'= {
        }
        &'sorcha-peer;peers;help;unban'= {
        }
        &'sorcha-peer;peers;help;reset'= {
        }
        &'sorcha-peer;peers;help;bans'= {
        }
        &'sorcha-peer;peers;help;connect'= {
        }
        &'sorcha-peer;peers;help;disconnect'= {
        }
        &'sorcha-peer;peers;help;help'= {
        }
        &'sorcha-peer;registers'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'Registers this node holds (as origin or replica)'
            cand available 'Public registers advertised by connected peers'
            cand create 'Create a register with this node as its origin'
            cand subscribe 'Replicate a register from peers'
            cand unsubscribe 'Stop replicating a register (its data is kept unless --purge)'
            cand purge 'Delete a replicated register''s data (after unsubscribing)'
            cand subscriptions 'Show subscriptions with their state, progress and last error'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sorcha-peer;registers;list'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;registers;available'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;registers;create'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand --public 'Advertise and serve it to peers (private registers never leave this node)'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;registers;subscribe'= {
            cand --mode 'full-replica: the whole chain from genesis; forward-only: from the current head on. The same subscription again is a no-op that succeeds'
            cand --timeout 'With --wait: give up (exit 1) after this long, e.g. 10m'
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand --wait 'Show progress and return once fully replicated (or active, for forward-only)'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;registers;unsubscribe'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand --purge 'Also delete the replicated data'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;registers;purge'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;registers;subscriptions'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;registers;help'= {
            cand list 'Registers this node holds (as origin or replica)'
            cand available 'Public registers advertised by connected peers'
            cand create 'Create a register with this node as its origin'
            cand subscribe 'Replicate a register from peers'
            cand unsubscribe 'Stop replicating a register (its data is kept unless --purge)'
            cand purge 'Delete a replicated register''s data (after unsubscribing)'
            cand subscriptions 'Show subscriptions with their state, progress and last error'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sorcha-peer;registers;help;list'= {
        }
        &'sorcha-peer;registers;help;available'= {
        }
        &'sorcha-peer;registers;help;create'= {
        }
        &'sorcha-peer;registers;help;subscribe'= {
        }
        &'sorcha-peer;registers;help;unsubscribe'= {
        }
        &'sorcha-peer;registers;help;purge'= {
        }
        &'sorcha-peer;registers;help;subscriptions'= {
        }
        &'sorcha-peer;registers;help;help'= {
        }
        &'sorcha-peer;tx'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand submit 'Submit a transaction (the whole input), or one per line with --lines'
            cand get 'Show a transaction: pending, or sealed with its version and docket number'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sorcha-peer;tx;submit'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand --lines 'Submit each non-empty input line as its own transaction; prints one ID per line (with -o json: JSON Lines, one object per input line, the fields a single submit answers), then a count on stderr: stored, held already, not stored. The input is read and sent as it comes, in requests of bounded size; if one fails, the lines printed until then were stored and the lines after them were not'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;tx;get'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;tx;help'= {
            cand submit 'Submit a transaction (the whole input), or one per line with --lines'
            cand get 'Show a transaction: pending, or sealed with its version and docket number'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sorcha-peer;tx;help;submit'= {
        }
        &'sorcha-peer;tx;help;get'= {
        }
        &'sorcha-peer;tx;help;help'= {
        }
        &'sorcha-peer;lag'= {
            cand --against 'The other node''s peer-protocol address (no admin token needed there)'
            cand --register 'Only these registers (repeat the option for several); each named register is judged, held here or not'
            cand --max-lag 'Exit 1 if any register held here is more than N transactions behind (or has diverged), saying why for each. Exit codes: 0 within the limit, 1 over it or forked, 3 this node''s admin API cannot be reached, 5 a named register is not advertised there'
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand --all 'Also judge the registers the other node advertises and this one does not hold (otherwise they are only shown)'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;events'= {
            cand --limit 'How many recent events to print first (the node keeps the last `event_history` audit events, 1000 by default, and the last 200 progress events apart)'
            cand --type 'Only events of this type, or of this class: `audit` (connections, bans, verification failures, subscription states, queues at their bound, storage) or `progress` (replication progress, dockets sealed and replicated); repeatable'
            cand --peer 'Only events that name this peer (ID, unique prefix or name), or this IP address or subnet (bans); a ban covering the peer counts'
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -f 'Keep printing events as they happen, until Ctrl-C'
            cand --follow 'Keep printing events as they happen, until Ctrl-C'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;config'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand default 'Print an annotated configuration file with every key at its default'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sorcha-peer;config;default'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;config;help'= {
            cand default 'Print an annotated configuration file with every key at its default'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sorcha-peer;config;help;default'= {
        }
        &'sorcha-peer;config;help;help'= {
        }
        &'sorcha-peer;tls'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand ca 'Make a certificate authority in DIR: ca.pem (every node''s tls_ca_file), ca.key (keep it secret), crl.pem (every node''s tls_crl_file)'
            cand issue 'Issue a certificate for the node whose data directory --data-dir names (its node.key), signed by the CA in --ca; written to <data-dir>/node-cert.pem unless --out says'
            cand revoke 'Revoke a node certificate: add it to the CA''s crl.pem (nodes re-read it and disconnect the node)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sorcha-peer;tls;ca'= {
            cand --out 'Directory to create the CA in (created if missing; existing CA files are never overwritten)'
            cand --name 'The CA''s name (its certificate''s subject)'
            cand --days 'Days the CA certificate is valid'
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;tls;issue'= {
            cand --ca 'The CA''s directory (from `tls ca`)'
            cand --days 'Days the certificate is valid'
            cand --out 'Where to write the certificate (PEM) [default: <data-dir>/node-cert.pem]'
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;tls;revoke'= {
            cand --ca 'The CA''s directory (from `tls ca`)'
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;tls;help'= {
            cand ca 'Make a certificate authority in DIR: ca.pem (every node''s tls_ca_file), ca.key (keep it secret), crl.pem (every node''s tls_crl_file)'
            cand issue 'Issue a certificate for the node whose data directory --data-dir names (its node.key), signed by the CA in --ca; written to <data-dir>/node-cert.pem unless --out says'
            cand revoke 'Revoke a node certificate: add it to the CA''s crl.pem (nodes re-read it and disconnect the node)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sorcha-peer;tls;help;ca'= {
        }
        &'sorcha-peer;tls;help;issue'= {
        }
        &'sorcha-peer;tls;help;revoke'= {
        }
        &'sorcha-peer;tls;help;help'= {
        }
        &'sorcha-peer;version'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;completions'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]'
            cand --cacert 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand --no-headers 'Tables without their header line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;help'= {
            cand serve 'Run a peer node in the foreground'
            cand status 'Show the node''s identity, addresses, storage and peer counts'
            cand doctor 'Check what an operator would check by hand (readiness, storage and disk space, clock, address, certificate, replication, risky settings, file permissions); each item ok, unknown, warning or failing with its fix. Exit 1 when an item fails'
            cand schema 'The JSON Schema of an `-o json` output or an admin API body (without NAME: the list), with every field described'
            cand peers 'Inspect and manage peers: list, get, connect, disconnect, ban, unban, reset, bans'
            cand registers 'Registers: create, list, subscribe to, unsubscribe from, purge'
            cand tx 'Transactions: submit and look up'
            cand lag 'How far this node is behind another node, per register (exit 1 beyond --max-lag)'
            cand events 'Print the node''s recent events (peers, bans, replication, storage); --follow streams them. With -o json: JSON Lines, one compact object per event (`jq` reads them as a stream)'
            cand config 'Configuration helpers'
            cand tls 'Certificates for peer_tls = "ca": make a CA, issue a node certificate, revoke one'
            cand version 'Print this binary''s version and the commit it was built from'
            cand completions 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sorcha-peer;help;serve'= {
        }
        &'sorcha-peer;help;status'= {
        }
        &'sorcha-peer;help;doctor'= {
        }
        &'sorcha-peer;help;schema'= {
        }
        &'sorcha-peer;help;peers'= {
            cand list 'List known peers'
            cand get 'Show one peer in detail, including why its quality score is what it is'
            cand ban 'Ban a peer (by ID, unique ID prefix or name), or every peer at an IP address or CIDR subnet'
            cand unban 'Lift a ban'
            cand reset 'Set a peer''s failure count and penalties to zero (reports the previous count)'
            cand bans 'List bans in force, with time remaining'
            cand connect 'Dial a node once, now, and print the peer ID reached (or say why not)'
            cand disconnect 'Close the session with a peer without banning it'
        }
        &'sorcha-peer;help;peers;list'= {
        }
        &'sorcha-peer;help;peers;get'= {
        }
        &'sorcha-peer;help;peers;ban'= {
        }
        &'sorcha-peer;help;peers;unban'= {
        }
        &'sorcha-peer;help;peers;reset'= {
        }
        &'sorcha-peer;help;peers;bans'= {
        }
        &'sorcha-peer;help;peers;connect'= {
        }
        &'sorcha-peer;help;peers;disconnect'= {
        }
        &'sorcha-peer;help;registers'= {
            cand list 'Registers this node holds (as origin or replica)'
            cand available 'Public registers advertised by connected peers'
            cand create 'Create a register with this node as its origin'
            cand subscribe 'Replicate a register from peers'
            cand unsubscribe 'Stop replicating a register (its data is kept unless --purge)'
            cand purge 'Delete a replicated register''s data (after unsubscribing)'
            cand subscriptions 'Show subscriptions with their state, progress and last error'
        }
        &'sorcha-peer;help;registers;list'= {
        }
        &'sorcha-peer;help;registers;available'= {
        }
        &'sorcha-peer;help;registers;create'= {
        }
        &'sorcha-peer;help;registers;subscribe'= {
        }
        &'sorcha-peer;help;registers;unsubscribe'= {
        }
        &'sorcha-peer;help;registers;purge'= {
        }
        &'sorcha-peer;help;registers;subscriptions'= {
        }
        &'sorcha-peer;help;tx'= {
            cand submit 'Submit a transaction (the whole input), or one per line with --lines'
            cand get 'Show a transaction: pending, or sealed with its version and docket number'
        }
        &'sorcha-peer;help;tx;submit'= {
        }
        &'sorcha-peer;help;tx;get'= {
        }
        &'sorcha-peer;help;lag'= {
        }
        &'sorcha-peer;help;events'= {
        }
        &'sorcha-peer;help;config'= {
            cand default 'Print an annotated configuration file with every key at its default'
        }
        &'sorcha-peer;help;config;default'= {
        }
        &'sorcha-peer;help;tls'= {
            cand ca 'Make a certificate authority in DIR: ca.pem (every node''s tls_ca_file), ca.key (keep it secret), crl.pem (every node''s tls_crl_file)'
            cand issue 'Issue a certificate for the node whose data directory --data-dir names (its node.key), signed by the CA in --ca; written to <data-dir>/node-cert.pem unless --out says'
            cand revoke 'Revoke a node certificate: add it to the CA''s crl.pem (nodes re-read it and disconnect the node)'
        }
        &'sorcha-peer;help;tls;ca'= {
        }
        &'sorcha-peer;help;tls;issue'= {
        }
        &'sorcha-peer;help;tls;revoke'= {
        }
        &'sorcha-peer;help;version'= {
        }
        &'sorcha-peer;help;completions'= {
        }
        &'sorcha-peer;help;help'= {
        }
    ]
    $completions[$command]
}
