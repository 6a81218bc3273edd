
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
            cand --token 'Admin bearer token [default: read from <data-dir>/admin.token]'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand serve 'Run a peer node in the foreground'
            cand status 'Show the node''s identity, addresses, storage and peer counts'
            cand peers 'Inspect and manage peers: list, get, ban, unban, reset, bans'
            cand config 'Configuration helpers'
            cand completions 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sorcha-peer;serve'= {
            cand --config 'TOML configuration file (see `sorcha-peer config default`)'
            cand --listen 'Peer protocol address [default: 0.0.0.0:5000]'
            cand --admin-listen 'Admin API address [default: 127.0.0.1:5080]'
            cand --advertise-address 'Address peers should dial to reach this node [default: the listen address]'
            cand --seed 'A node to join through (repeatable)'
            cand --database-url 'postgres://user:password@host/db to store on PostgreSQL [default: SQLite in the data dir]'
            cand --name 'A label for operators (not an identity)'
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token [default: read from <data-dir>/admin.token]'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;status'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token [default: read from <data-dir>/admin.token]'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;peers'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token [default: read from <data-dir>/admin.token]'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List known peers'
            cand get 'Show one peer in detail, including why its quality score is what it is'
            cand ban 'Ban a peer by ID (or unique prefix), or every peer at an IP address or CIDR subnet'
            cand unban 'Lift a ban'
            cand reset 'Set a peer''s failure count and penalties to zero (reports the previous count)'
            cand bans 'List bans in force, with time remaining'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sorcha-peer;peers;list'= {
            cand --state 'Only peers in this state'
            cand --limit 'Show at most N peers'
            cand --sort 'Order of the list'
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token [default: read from <data-dir>/admin.token]'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;peers;get'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token [default: read from <data-dir>/admin.token]'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;peers;ban'= {
            cand --reason 'Why (shown in `peers bans` and `peers get`)'
            cand --duration 'How long, e.g. 30m, 1h, 7d [default: until unbanned]'
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token [default: read from <data-dir>/admin.token]'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;peers;unban'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token [default: read from <data-dir>/admin.token]'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;peers;reset'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token [default: read from <data-dir>/admin.token]'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;peers;bans'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token [default: read from <data-dir>/admin.token]'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;peers;help'= {
            cand list 'List known peers'
            cand get 'Show one peer in detail, including why its quality score is what it is'
            cand ban 'Ban a peer by ID (or unique prefix), or every peer at an IP address or CIDR subnet'
            cand unban 'Lift a ban'
            cand reset 'Set a peer''s failure count and penalties to zero (reports the previous count)'
            cand bans 'List bans in force, with time remaining'
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
        &'sorcha-peer;peers;help;help'= {
        }
        &'sorcha-peer;config'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token [default: read from <data-dir>/admin.token]'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand default 'Print an annotated configuration file with every key at its default'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sorcha-peer;config;default'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token [default: read from <data-dir>/admin.token]'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
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
        &'sorcha-peer;completions'= {
            cand --node 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]'
            cand --token 'Admin bearer token [default: read from <data-dir>/admin.token]'
            cand --data-dir 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -q 'Print only the requested data, no confirmations'
            cand --quiet 'Print only the requested data, no confirmations'
            cand --no-color 'Never colour output (also honoured: the NO_COLOR environment variable)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sorcha-peer;help'= {
            cand serve 'Run a peer node in the foreground'
            cand status 'Show the node''s identity, addresses, storage and peer counts'
            cand peers 'Inspect and manage peers: list, get, ban, unban, reset, bans'
            cand config 'Configuration helpers'
            cand completions 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sorcha-peer;help;serve'= {
        }
        &'sorcha-peer;help;status'= {
        }
        &'sorcha-peer;help;peers'= {
            cand list 'List known peers'
            cand get 'Show one peer in detail, including why its quality score is what it is'
            cand ban 'Ban a peer by ID (or unique prefix), or every peer at an IP address or CIDR subnet'
            cand unban 'Lift a ban'
            cand reset 'Set a peer''s failure count and penalties to zero (reports the previous count)'
            cand bans 'List bans in force, with time remaining'
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
        &'sorcha-peer;help;config'= {
            cand default 'Print an annotated configuration file with every key at its default'
        }
        &'sorcha-peer;help;config;default'= {
        }
        &'sorcha-peer;help;completions'= {
        }
        &'sorcha-peer;help;help'= {
        }
    ]
    $completions[$command]
}
