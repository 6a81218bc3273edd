# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_sorcha_peer_global_optspecs
    string join \n node= token= cacert= data-dir= o/output= q/quiet no-color no-headers h/help V/version
end

function __fish_sorcha_peer_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_sorcha_peer_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_sorcha_peer_using_subcommand
    set -l cmd (__fish_sorcha_peer_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "serve" -d 'Run a peer node in the foreground'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "status" -d 'Show the node\'s identity, addresses, storage and peer counts'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "doctor" -d 'Check what an operator would check by hand (readiness, storage and disk space, clock, address, certificate, replication, risky settings, file permissions); each item ok, unknown, warning or failing with its fix. Exit 1 when an item fails'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "schema" -d 'The JSON Schema of an `-o json` output or an admin API body (without NAME: the list), with every field described'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "peers" -d 'Inspect and manage peers: list, get, connect, disconnect, ban, unban, reset, bans'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "registers" -d 'Registers: create, list, subscribe to, unsubscribe from, purge'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "tx" -d 'Transactions: submit and look up'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "lag" -d 'How far this node is behind another node, per register (exit 1 beyond --max-lag)'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "events" -d 'Print the node\'s recent events (peers, bans, replication, storage); --follow streams them. With -o json: JSON Lines, one compact object per event (`jq` reads them as a stream)'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "config" -d 'Configuration helpers'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "tls" -d 'Certificates for peer_tls = "ca": make a CA, issue a node certificate, revoke one'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "version" -d 'Print this binary\'s version and the commit it was built from'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l config -d 'TOML configuration file (see `sorcha-peer config default`)' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l listen -d 'Peer protocol address [default: 0.0.0.0:5000]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l admin-listen -d 'Admin API address [default: 127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l peer-tls -d 'How peer connections are protected [default: node-key]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l advertise-address -d 'Address peers should dial to reach this node [default: discovered, see README "Reachability"]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l seed -d 'A node to join through (repeatable)' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l database-url -d 'postgres://user:password@host/db to store on PostgreSQL [default: SQLite in the data dir]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l durability -d 'What an acknowledged write survives [default: full]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l name -d 'A label for operators (not an identity)' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l platform-listen -d 'Serve the Sorcha platform\'s gRPC services on this address [default: off]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l log-level -d 'Log filter: a level or EnvFilter directives, e.g. info,sorcha_peer=debug [default: info]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l log-format -d 'Log line format [default: text]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l otlp-endpoint -d 'Send OpenTelemetry traces to this OTLP/gRPC collector, e.g. http://127.0.0.1:4317' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand status" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand status" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand status" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand status" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand status" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand status" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand status" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand status" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand status" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand doctor" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand doctor" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand doctor" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand doctor" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand doctor" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand doctor" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand doctor" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand doctor" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand doctor" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand schema" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand schema" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand schema" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand schema" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand schema" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand schema" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand schema" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand schema" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand schema" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand schema" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans connect disconnect help" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans connect disconnect help" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans connect disconnect help" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans connect disconnect help" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans connect disconnect help" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans connect disconnect help" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans connect disconnect help" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans connect disconnect help" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans connect disconnect help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans connect disconnect help" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans connect disconnect help" -f -a "list" -d 'List known peers'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans connect disconnect help" -f -a "get" -d 'Show one peer in detail, including why its quality score is what it is'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans connect disconnect help" -f -a "ban" -d 'Ban a peer (by ID, unique ID prefix or name), or every peer at an IP address or CIDR subnet'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans connect disconnect help" -f -a "unban" -d 'Lift a ban'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans connect disconnect help" -f -a "reset" -d 'Set a peer\'s failure count and penalties to zero (reports the previous count)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans connect disconnect help" -f -a "bans" -d 'List bans in force, with time remaining'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans connect disconnect help" -f -a "connect" -d 'Dial a node once, now, and print the peer ID reached (or say why not)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans connect disconnect help" -f -a "disconnect" -d 'Close the session with a peer without banning it'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans connect disconnect help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -l state -d 'Only peers in this state' -r -f -a "connected\t''
connecting\t''
disconnected\t''
banned\t''
all\t''"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -l limit -d 'Show at most N peers' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -l sort -d 'Order of the list' -r -f -a "id\t''
name\t''
address\t''
state\t''
latency\t''
score\t''
failures\t''
last-seen\t''
first-seen\t''"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -s w -l watch -d 'Keep the list on screen, redrawn when peers connect, go or are banned (and every 2s), until Ctrl-C'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from get" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from get" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from get" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from get" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from get" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from get" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from get" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from get" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -l reason -d 'Why (shown in `peers bans` and `peers get`)' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -l duration -d 'How long, e.g. 30m, 1h, 7d; at most 100y [default: until unbanned]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -l force -d 'Ban even if it is the only source of an active subscription, this node\'s own ID or address, or a subnet that covers almost everyone (shorter than /8, or /16 for IPv6)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from unban" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from unban" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from unban" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from unban" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from unban" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from unban" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from unban" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from unban" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from unban" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from unban" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from reset" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from reset" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from reset" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from reset" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from reset" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from reset" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from reset" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from reset" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from reset" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from reset" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from bans" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from bans" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from bans" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from bans" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from bans" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from bans" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from bans" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from bans" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from bans" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from bans" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from connect" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from connect" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from connect" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from connect" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from connect" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from connect" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from connect" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from connect" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from connect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from connect" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from disconnect" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from disconnect" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from disconnect" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from disconnect" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from disconnect" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from disconnect" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from disconnect" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from disconnect" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from disconnect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from disconnect" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from help" -f -a "list" -d 'List known peers'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from help" -f -a "get" -d 'Show one peer in detail, including why its quality score is what it is'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from help" -f -a "ban" -d 'Ban a peer (by ID, unique ID prefix or name), or every peer at an IP address or CIDR subnet'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from help" -f -a "unban" -d 'Lift a ban'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from help" -f -a "reset" -d 'Set a peer\'s failure count and penalties to zero (reports the previous count)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from help" -f -a "bans" -d 'List bans in force, with time remaining'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from help" -f -a "connect" -d 'Dial a node once, now, and print the peer ID reached (or say why not)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from help" -f -a "disconnect" -d 'Close the session with a peer without banning it'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and not __fish_seen_subcommand_from list available create subscribe unsubscribe purge subscriptions help" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and not __fish_seen_subcommand_from list available create subscribe unsubscribe purge subscriptions help" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and not __fish_seen_subcommand_from list available create subscribe unsubscribe purge subscriptions help" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and not __fish_seen_subcommand_from list available create subscribe unsubscribe purge subscriptions help" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and not __fish_seen_subcommand_from list available create subscribe unsubscribe purge subscriptions help" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and not __fish_seen_subcommand_from list available create subscribe unsubscribe purge subscriptions help" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and not __fish_seen_subcommand_from list available create subscribe unsubscribe purge subscriptions help" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and not __fish_seen_subcommand_from list available create subscribe unsubscribe purge subscriptions help" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and not __fish_seen_subcommand_from list available create subscribe unsubscribe purge subscriptions help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and not __fish_seen_subcommand_from list available create subscribe unsubscribe purge subscriptions help" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and not __fish_seen_subcommand_from list available create subscribe unsubscribe purge subscriptions help" -f -a "list" -d 'Registers this node holds (as origin or replica)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and not __fish_seen_subcommand_from list available create subscribe unsubscribe purge subscriptions help" -f -a "available" -d 'Public registers advertised by connected peers'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and not __fish_seen_subcommand_from list available create subscribe unsubscribe purge subscriptions help" -f -a "create" -d 'Create a register with this node as its origin'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and not __fish_seen_subcommand_from list available create subscribe unsubscribe purge subscriptions help" -f -a "subscribe" -d 'Replicate a register from peers'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and not __fish_seen_subcommand_from list available create subscribe unsubscribe purge subscriptions help" -f -a "unsubscribe" -d 'Stop replicating a register (its data is kept unless --purge)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and not __fish_seen_subcommand_from list available create subscribe unsubscribe purge subscriptions help" -f -a "purge" -d 'Delete a replicated register\'s data (after unsubscribing)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and not __fish_seen_subcommand_from list available create subscribe unsubscribe purge subscriptions help" -f -a "subscriptions" -d 'Show subscriptions with their state, progress and last error'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and not __fish_seen_subcommand_from list available create subscribe unsubscribe purge subscriptions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from list" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from list" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from list" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from list" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from list" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from list" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from available" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from available" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from available" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from available" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from available" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from available" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from available" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from available" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from available" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from available" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from create" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from create" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from create" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from create" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from create" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from create" -l public -d 'Advertise and serve it to peers (private registers never leave this node)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from create" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from create" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscribe" -l mode -d 'full-replica: the whole chain from genesis; forward-only: from the current head on. The same subscription again is a no-op that succeeds' -r -f -a "full-replica\t''
forward-only\t''"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscribe" -l timeout -d 'With --wait: give up (exit 1) after this long, e.g. 10m' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscribe" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscribe" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscribe" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscribe" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscribe" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscribe" -l wait -d 'Show progress and return once fully replicated (or active, for forward-only)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscribe" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscribe" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscribe" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscribe" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscribe" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from unsubscribe" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from unsubscribe" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from unsubscribe" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from unsubscribe" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from unsubscribe" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from unsubscribe" -l purge -d 'Also delete the replicated data'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from unsubscribe" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from unsubscribe" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from unsubscribe" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from unsubscribe" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from unsubscribe" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from purge" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from purge" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from purge" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from purge" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from purge" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from purge" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from purge" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from purge" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from purge" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from purge" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscriptions" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscriptions" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscriptions" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscriptions" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscriptions" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscriptions" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscriptions" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscriptions" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscriptions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscriptions" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from help" -f -a "list" -d 'Registers this node holds (as origin or replica)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from help" -f -a "available" -d 'Public registers advertised by connected peers'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a register with this node as its origin'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from help" -f -a "subscribe" -d 'Replicate a register from peers'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from help" -f -a "unsubscribe" -d 'Stop replicating a register (its data is kept unless --purge)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from help" -f -a "purge" -d 'Delete a replicated register\'s data (after unsubscribing)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from help" -f -a "subscriptions" -d 'Show subscriptions with their state, progress and last error'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and not __fish_seen_subcommand_from submit get help" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and not __fish_seen_subcommand_from submit get help" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and not __fish_seen_subcommand_from submit get help" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and not __fish_seen_subcommand_from submit get help" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and not __fish_seen_subcommand_from submit get help" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and not __fish_seen_subcommand_from submit get help" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and not __fish_seen_subcommand_from submit get help" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and not __fish_seen_subcommand_from submit get help" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and not __fish_seen_subcommand_from submit get help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and not __fish_seen_subcommand_from submit get help" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and not __fish_seen_subcommand_from submit get help" -f -a "submit" -d 'Submit a transaction (the whole input), or one per line with --lines'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and not __fish_seen_subcommand_from submit get help" -f -a "get" -d 'Show a transaction: pending, or sealed with its version and docket number'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and not __fish_seen_subcommand_from submit get help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from submit" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from submit" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from submit" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from submit" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from submit" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from submit" -l lines -d 'Submit each non-empty input line as its own transaction; prints one ID per line (with -o json: JSON Lines, one object per input line, the fields a single submit answers), then a count on stderr: stored, held already, not stored. The input is read and sent as it comes, in requests of bounded size; if one fails, the lines printed until then were stored and the lines after them were not'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from submit" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from submit" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from submit" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from submit" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from submit" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from get" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from get" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from get" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from get" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from get" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from get" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from get" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from get" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from help" -f -a "submit" -d 'Submit a transaction (the whole input), or one per line with --lines'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from help" -f -a "get" -d 'Show a transaction: pending, or sealed with its version and docket number'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand lag" -l against -d 'The other node\'s peer-protocol address (no admin token needed there)' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand lag" -l register -d 'Only these registers (repeat the option for several); each named register is judged, held here or not' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand lag" -l max-lag -d 'Exit 1 if any register held here is more than N transactions behind (or has diverged), saying why for each. Exit codes: 0 within the limit, 1 over it or forked, 3 this node\'s admin API cannot be reached, 5 a named register is not advertised there' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand lag" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand lag" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand lag" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand lag" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand lag" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand lag" -l all -d 'Also judge the registers the other node advertises and this one does not hold (otherwise they are only shown)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand lag" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand lag" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand lag" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand lag" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand lag" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand events" -l limit -d 'How many recent events to print first (the node keeps the last `event_history` audit events, 1000 by default, and the last 200 progress events apart)' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand events" -l type -d 'Only events of this type, or of this class: `audit` (connections, bans, verification failures, subscription states, queues at their bound, storage) or `progress` (replication progress, dockets sealed and replicated); repeatable' -r -f -a "peerConnected\t''
peerDisconnected\t''
peerBanned\t''
peerUnbanned\t''
verificationFailed\t''
subscriptionState\t''
queuePressure\t''
storageFailing\t''
storageRecovered\t''
subscriptionProgress\t''
docketSealed\t''
docketReplicated\t''
audit\t''
progress\t''"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand events" -l peer -d 'Only events that name this peer (ID, unique prefix or name), or this IP address or subnet (bans); a ban covering the peer counts' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand events" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand events" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand events" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand events" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand events" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand events" -s f -l follow -d 'Keep printing events as they happen, until Ctrl-C'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand events" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand events" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand events" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand events" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand events" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -f -a "default" -d 'Print an annotated configuration file with every key at its default'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from default" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from default" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from default" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from default" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from default" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from default" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from default" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from default" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from default" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from default" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "default" -d 'Print an annotated configuration file with every key at its default'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and not __fish_seen_subcommand_from ca issue revoke help" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and not __fish_seen_subcommand_from ca issue revoke help" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and not __fish_seen_subcommand_from ca issue revoke help" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and not __fish_seen_subcommand_from ca issue revoke help" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and not __fish_seen_subcommand_from ca issue revoke help" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and not __fish_seen_subcommand_from ca issue revoke help" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and not __fish_seen_subcommand_from ca issue revoke help" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and not __fish_seen_subcommand_from ca issue revoke help" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and not __fish_seen_subcommand_from ca issue revoke help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and not __fish_seen_subcommand_from ca issue revoke help" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and not __fish_seen_subcommand_from ca issue revoke help" -f -a "ca" -d 'Make a certificate authority in DIR: ca.pem (every node\'s tls_ca_file), ca.key (keep it secret), crl.pem (every node\'s tls_crl_file)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and not __fish_seen_subcommand_from ca issue revoke help" -f -a "issue" -d 'Issue a certificate for the node whose data directory --data-dir names (its node.key), signed by the CA in --ca; written to <data-dir>/node-cert.pem unless --out says'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and not __fish_seen_subcommand_from ca issue revoke help" -f -a "revoke" -d 'Revoke a node certificate: add it to the CA\'s crl.pem (nodes re-read it and disconnect the node)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and not __fish_seen_subcommand_from ca issue revoke help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from ca" -l out -d 'Directory to create the CA in (created if missing; existing CA files are never overwritten)' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from ca" -l name -d 'The CA\'s name (its certificate\'s subject)' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from ca" -l days -d 'Days the CA certificate is valid' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from ca" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from ca" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from ca" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from ca" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from ca" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from ca" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from ca" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from ca" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from ca" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from ca" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from issue" -l ca -d 'The CA\'s directory (from `tls ca`)' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from issue" -l days -d 'Days the certificate is valid' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from issue" -l out -d 'Where to write the certificate (PEM) [default: <data-dir>/node-cert.pem]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from issue" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from issue" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from issue" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from issue" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from issue" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from issue" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from issue" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from issue" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from issue" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from issue" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from revoke" -l ca -d 'The CA\'s directory (from `tls ca`)' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from revoke" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from revoke" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from revoke" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from revoke" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from revoke" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from revoke" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from revoke" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from revoke" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from revoke" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from help" -f -a "ca" -d 'Make a certificate authority in DIR: ca.pem (every node\'s tls_ca_file), ca.key (keep it secret), crl.pem (every node\'s tls_crl_file)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from help" -f -a "issue" -d 'Issue a certificate for the node whose data directory --data-dir names (its node.key), signed by the CA in --ca; written to <data-dir>/node-cert.pem unless --out says'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Revoke a node certificate: add it to the CA\'s crl.pem (nodes re-read it and disconnect the node)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tls; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand version" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand version" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand version" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand version" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand version" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand version" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand version" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand version" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand version" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand version" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand completions" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand completions" -l token -d 'Admin bearer token, or a JWT signed with the node\'s jwt_key [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand completions" -l cacert -d 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand completions" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand completions" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people, fitted to the terminal width (COLUMNS)'
wide\t'Tables with every column, IDs in full, never wrapped'
json\t'One JSON document on stdout, with the admin API\'s field names (`events` and `tx submit --lines`: JSON Lines, one object per event or input line)'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand completions" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand completions" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand completions" -l no-headers -d 'Tables without their header line'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand completions" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status doctor schema peers registers tx lag events config tls version completions help" -f -a "serve" -d 'Run a peer node in the foreground'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status doctor schema peers registers tx lag events config tls version completions help" -f -a "status" -d 'Show the node\'s identity, addresses, storage and peer counts'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status doctor schema peers registers tx lag events config tls version completions help" -f -a "doctor" -d 'Check what an operator would check by hand (readiness, storage and disk space, clock, address, certificate, replication, risky settings, file permissions); each item ok, unknown, warning or failing with its fix. Exit 1 when an item fails'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status doctor schema peers registers tx lag events config tls version completions help" -f -a "schema" -d 'The JSON Schema of an `-o json` output or an admin API body (without NAME: the list), with every field described'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status doctor schema peers registers tx lag events config tls version completions help" -f -a "peers" -d 'Inspect and manage peers: list, get, connect, disconnect, ban, unban, reset, bans'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status doctor schema peers registers tx lag events config tls version completions help" -f -a "registers" -d 'Registers: create, list, subscribe to, unsubscribe from, purge'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status doctor schema peers registers tx lag events config tls version completions help" -f -a "tx" -d 'Transactions: submit and look up'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status doctor schema peers registers tx lag events config tls version completions help" -f -a "lag" -d 'How far this node is behind another node, per register (exit 1 beyond --max-lag)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status doctor schema peers registers tx lag events config tls version completions help" -f -a "events" -d 'Print the node\'s recent events (peers, bans, replication, storage); --follow streams them. With -o json: JSON Lines, one compact object per event (`jq` reads them as a stream)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status doctor schema peers registers tx lag events config tls version completions help" -f -a "config" -d 'Configuration helpers'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status doctor schema peers registers tx lag events config tls version completions help" -f -a "tls" -d 'Certificates for peer_tls = "ca": make a CA, issue a node certificate, revoke one'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status doctor schema peers registers tx lag events config tls version completions help" -f -a "version" -d 'Print this binary\'s version and the commit it was built from'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status doctor schema peers registers tx lag events config tls version completions help" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status doctor schema peers registers tx lag events config tls version completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from peers" -f -a "list" -d 'List known peers'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from peers" -f -a "get" -d 'Show one peer in detail, including why its quality score is what it is'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from peers" -f -a "ban" -d 'Ban a peer (by ID, unique ID prefix or name), or every peer at an IP address or CIDR subnet'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from peers" -f -a "unban" -d 'Lift a ban'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from peers" -f -a "reset" -d 'Set a peer\'s failure count and penalties to zero (reports the previous count)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from peers" -f -a "bans" -d 'List bans in force, with time remaining'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from peers" -f -a "connect" -d 'Dial a node once, now, and print the peer ID reached (or say why not)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from peers" -f -a "disconnect" -d 'Close the session with a peer without banning it'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from registers" -f -a "list" -d 'Registers this node holds (as origin or replica)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from registers" -f -a "available" -d 'Public registers advertised by connected peers'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from registers" -f -a "create" -d 'Create a register with this node as its origin'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from registers" -f -a "subscribe" -d 'Replicate a register from peers'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from registers" -f -a "unsubscribe" -d 'Stop replicating a register (its data is kept unless --purge)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from registers" -f -a "purge" -d 'Delete a replicated register\'s data (after unsubscribing)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from registers" -f -a "subscriptions" -d 'Show subscriptions with their state, progress and last error'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from tx" -f -a "submit" -d 'Submit a transaction (the whole input), or one per line with --lines'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from tx" -f -a "get" -d 'Show a transaction: pending, or sealed with its version and docket number'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "default" -d 'Print an annotated configuration file with every key at its default'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from tls" -f -a "ca" -d 'Make a certificate authority in DIR: ca.pem (every node\'s tls_ca_file), ca.key (keep it secret), crl.pem (every node\'s tls_crl_file)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from tls" -f -a "issue" -d 'Issue a certificate for the node whose data directory --data-dir names (its node.key), signed by the CA in --ca; written to <data-dir>/node-cert.pem unless --out says'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from tls" -f -a "revoke" -d 'Revoke a node certificate: add it to the CA\'s crl.pem (nodes re-read it and disconnect the node)'

# Peer IDs known to the node the command line names, for the arguments that take a peer.
function __fish_sorcha_peer_peer_ids
    set -l cmd (commandline -opc)
    $cmd[1] __complete-peers -- $cmd 2>/dev/null
end
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from get ban unban reset disconnect" -f -a "(__fish_sorcha_peer_peer_ids)"

# Registers held by, or advertised to, the node the command line names.
function __fish_sorcha_peer_registers
    set -l cmd (commandline -opc)
    $cmd[1] __complete-registers -- $cmd 2>/dev/null
end
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscribe unsubscribe purge" -f -a "(__fish_sorcha_peer_registers)"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from submit get" -f -a "(__fish_sorcha_peer_registers)"
