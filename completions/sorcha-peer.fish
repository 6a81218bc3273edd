# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_sorcha_peer_global_optspecs
    string join \n node= token= data-dir= o/output= q/quiet no-color h/help V/version
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
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -l token -d 'Admin bearer token [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people'
json\t'One JSON document on stdout, with the admin API\'s field names'"
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "serve" -d 'Run a peer node in the foreground'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "status" -d 'Show the node\'s identity, addresses, storage and peer counts'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "peers" -d 'Inspect and manage peers: list, get, ban, unban, reset, bans'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "config" -d 'Configuration helpers'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c sorcha-peer -n "__fish_sorcha_peer_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l config -d 'TOML configuration file (see `sorcha-peer config default`)' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l listen -d 'Peer protocol address [default: 0.0.0.0:5000]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l admin-listen -d 'Admin API address [default: 127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l advertise-address -d 'Address peers should dial to reach this node [default: the listen address]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l seed -d 'A node to join through (repeatable)' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l database-url -d 'postgres://user:password@host/db to store on PostgreSQL [default: SQLite in the data dir]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l name -d 'A label for operators (not an identity)' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l token -d 'Admin bearer token [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people'
json\t'One JSON document on stdout, with the admin API\'s field names'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand serve" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand status" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand status" -l token -d 'Admin bearer token [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand status" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand status" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people'
json\t'One JSON document on stdout, with the admin API\'s field names'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand status" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand status" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand status" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans help" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans help" -l token -d 'Admin bearer token [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans help" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans help" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people'
json\t'One JSON document on stdout, with the admin API\'s field names'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans help" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans help" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans help" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans help" -f -a "list" -d 'List known peers'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans help" -f -a "get" -d 'Show one peer in detail, including why its quality score is what it is'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans help" -f -a "ban" -d 'Ban a peer by ID (or unique prefix), or every peer at an IP address or CIDR subnet'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans help" -f -a "unban" -d 'Lift a ban'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans help" -f -a "reset" -d 'Set a peer\'s failure count and penalties to zero (reports the previous count)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans help" -f -a "bans" -d 'List bans in force, with time remaining'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and not __fish_seen_subcommand_from list get ban unban reset bans help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
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
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -l token -d 'Admin bearer token [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people'
json\t'One JSON document on stdout, with the admin API\'s field names'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from get" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from get" -l token -d 'Admin bearer token [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from get" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from get" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people'
json\t'One JSON document on stdout, with the admin API\'s field names'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from get" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from get" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -l reason -d 'Why (shown in `peers bans` and `peers get`)' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -l duration -d 'How long, e.g. 30m, 1h, 7d [default: until unbanned]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -l token -d 'Admin bearer token [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people'
json\t'One JSON document on stdout, with the admin API\'s field names'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from ban" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from unban" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from unban" -l token -d 'Admin bearer token [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from unban" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from unban" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people'
json\t'One JSON document on stdout, with the admin API\'s field names'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from unban" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from unban" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from unban" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from unban" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from reset" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from reset" -l token -d 'Admin bearer token [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from reset" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from reset" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people'
json\t'One JSON document on stdout, with the admin API\'s field names'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from reset" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from reset" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from reset" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from reset" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from bans" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from bans" -l token -d 'Admin bearer token [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from bans" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from bans" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people'
json\t'One JSON document on stdout, with the admin API\'s field names'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from bans" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from bans" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from bans" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from bans" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from help" -f -a "list" -d 'List known peers'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from help" -f -a "get" -d 'Show one peer in detail, including why its quality score is what it is'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from help" -f -a "ban" -d 'Ban a peer by ID (or unique prefix), or every peer at an IP address or CIDR subnet'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from help" -f -a "unban" -d 'Lift a ban'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from help" -f -a "reset" -d 'Set a peer\'s failure count and penalties to zero (reports the previous count)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from help" -f -a "bans" -d 'List bans in force, with time remaining'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -l token -d 'Admin bearer token [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people'
json\t'One JSON document on stdout, with the admin API\'s field names'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -f -a "default" -d 'Print an annotated configuration file with every key at its default'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and not __fish_seen_subcommand_from default help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from default" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from default" -l token -d 'Admin bearer token [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from default" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from default" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people'
json\t'One JSON document on stdout, with the admin API\'s field names'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from default" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from default" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from default" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from default" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "default" -d 'Print an annotated configuration file with every key at its default'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand completions" -l node -d 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand completions" -l token -d 'Admin bearer token [default: read from <data-dir>/admin.token]' -r
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand completions" -l data-dir -d 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]' -r -F
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand completions" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and sentences for people'
json\t'One JSON document on stdout, with the admin API\'s field names'"
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand completions" -s q -l quiet -d 'Print only the requested data, no confirmations'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand completions" -l no-color -d 'Never colour output (also honoured: the NO_COLOR environment variable)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand completions" -s V -l version -d 'Print version'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status peers config completions help" -f -a "serve" -d 'Run a peer node in the foreground'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status peers config completions help" -f -a "status" -d 'Show the node\'s identity, addresses, storage and peer counts'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status peers config completions help" -f -a "peers" -d 'Inspect and manage peers: list, get, ban, unban, reset, bans'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status peers config completions help" -f -a "config" -d 'Configuration helpers'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status peers config completions help" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and not __fish_seen_subcommand_from serve status peers config completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from peers" -f -a "list" -d 'List known peers'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from peers" -f -a "get" -d 'Show one peer in detail, including why its quality score is what it is'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from peers" -f -a "ban" -d 'Ban a peer by ID (or unique prefix), or every peer at an IP address or CIDR subnet'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from peers" -f -a "unban" -d 'Lift a ban'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from peers" -f -a "reset" -d 'Set a peer\'s failure count and penalties to zero (reports the previous count)'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from peers" -f -a "bans" -d 'List bans in force, with time remaining'
complete -c sorcha-peer -n "__fish_sorcha_peer_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "default" -d 'Print an annotated configuration file with every key at its default'
