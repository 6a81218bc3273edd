
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'sorcha-peer' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'sorcha-peer'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'sorcha-peer' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run a peer node in the foreground')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show the node''s identity, addresses, storage and peer counts')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Check what an operator would check by hand (readiness, storage and disk space, clock, address, certificate, replication, risky settings, file permissions); each item ok, unknown, warning or failing with its fix. Exit 1 when an item fails')
            [CompletionResult]::new('schema', 'schema', [CompletionResultType]::ParameterValue, 'The JSON Schema of an `-o json` output or an admin API body (without NAME: the list), with every field described')
            [CompletionResult]::new('peers', 'peers', [CompletionResultType]::ParameterValue, 'Inspect and manage peers: list, get, connect, disconnect, ban, unban, reset, bans')
            [CompletionResult]::new('registers', 'registers', [CompletionResultType]::ParameterValue, 'Registers: create, list, subscribe to, unsubscribe from, purge')
            [CompletionResult]::new('tx', 'tx', [CompletionResultType]::ParameterValue, 'Transactions: submit and look up')
            [CompletionResult]::new('lag', 'lag', [CompletionResultType]::ParameterValue, 'How far this node is behind another node, per register (exit 1 beyond --max-lag)')
            [CompletionResult]::new('events', 'events', [CompletionResultType]::ParameterValue, 'Print the node''s recent events (peers, bans, replication, storage); --follow streams them. With -o json: JSON Lines, one compact object per event (`jq` reads them as a stream)')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Configuration helpers')
            [CompletionResult]::new('tls', 'tls', [CompletionResultType]::ParameterValue, 'Certificates for peer_tls = "ca": make a CA, issue a node certificate, revoke one')
            [CompletionResult]::new('version', 'version', [CompletionResultType]::ParameterValue, 'Print this binary''s version and the commit it was built from')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script (bash, zsh, fish, elvish, powershell)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'sorcha-peer;serve' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML configuration file (see `sorcha-peer config default`)')
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Peer protocol address [default: 0.0.0.0:5000]')
            [CompletionResult]::new('--admin-listen', '--admin-listen', [CompletionResultType]::ParameterName, 'Admin API address [default: 127.0.0.1:5080]')
            [CompletionResult]::new('--peer-tls', '--peer-tls', [CompletionResultType]::ParameterName, 'How peer connections are protected [default: node-key]')
            [CompletionResult]::new('--advertise-address', '--advertise-address', [CompletionResultType]::ParameterName, 'Address peers should dial to reach this node [default: discovered, see README "Reachability"]')
            [CompletionResult]::new('--seed', '--seed', [CompletionResultType]::ParameterName, 'A node to join through (repeatable)')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'postgres://user:password@host/db to store on PostgreSQL [default: SQLite in the data dir]')
            [CompletionResult]::new('--durability', '--durability', [CompletionResultType]::ParameterName, 'What an acknowledged write survives [default: full]')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'A label for operators (not an identity)')
            [CompletionResult]::new('--platform-listen', '--platform-listen', [CompletionResultType]::ParameterName, 'Serve the Sorcha platform''s gRPC services on this address [default: off]')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log filter: a level or EnvFilter directives, e.g. info,sorcha_peer=debug [default: info]')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log line format [default: text]')
            [CompletionResult]::new('--otlp-endpoint', '--otlp-endpoint', [CompletionResultType]::ParameterName, 'Send OpenTelemetry traces to this OTLP/gRPC collector, e.g. http://127.0.0.1:4317')
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;status' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;doctor' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;schema' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;peers' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List known peers')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one peer in detail, including why its quality score is what it is')
            [CompletionResult]::new('ban', 'ban', [CompletionResultType]::ParameterValue, 'Ban a peer (by ID, unique ID prefix or name), or every peer at an IP address or CIDR subnet')
            [CompletionResult]::new('unban', 'unban', [CompletionResultType]::ParameterValue, 'Lift a ban')
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Set a peer''s failure count and penalties to zero (reports the previous count)')
            [CompletionResult]::new('bans', 'bans', [CompletionResultType]::ParameterValue, 'List bans in force, with time remaining')
            [CompletionResult]::new('connect', 'connect', [CompletionResultType]::ParameterValue, 'Dial a node once, now, and print the peer ID reached (or say why not)')
            [CompletionResult]::new('disconnect', 'disconnect', [CompletionResultType]::ParameterValue, 'Close the session with a peer without banning it')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'sorcha-peer;peers;list' {
            [CompletionResult]::new('--state', '--state', [CompletionResultType]::ParameterName, 'Only peers in this state')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Show at most N peers')
            [CompletionResult]::new('--sort', '--sort', [CompletionResultType]::ParameterName, 'Order of the list')
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Keep the list on screen, redrawn when peers connect, go or are banned (and every 2s), until Ctrl-C')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Keep the list on screen, redrawn when peers connect, go or are banned (and every 2s), until Ctrl-C')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;peers;get' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;peers;ban' {
            [CompletionResult]::new('--reason', '--reason', [CompletionResultType]::ParameterName, 'Why (shown in `peers bans` and `peers get`)')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'How long, e.g. 30m, 1h, 7d; at most 100y [default: until unbanned]')
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Ban even if it is the only source of an active subscription, this node''s own ID or address, or a subnet that covers almost everyone (shorter than /8, or /16 for IPv6)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;peers;unban' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;peers;reset' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;peers;bans' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;peers;connect' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;peers;disconnect' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;peers;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List known peers')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one peer in detail, including why its quality score is what it is')
            [CompletionResult]::new('ban', 'ban', [CompletionResultType]::ParameterValue, 'Ban a peer (by ID, unique ID prefix or name), or every peer at an IP address or CIDR subnet')
            [CompletionResult]::new('unban', 'unban', [CompletionResultType]::ParameterValue, 'Lift a ban')
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Set a peer''s failure count and penalties to zero (reports the previous count)')
            [CompletionResult]::new('bans', 'bans', [CompletionResultType]::ParameterValue, 'List bans in force, with time remaining')
            [CompletionResult]::new('connect', 'connect', [CompletionResultType]::ParameterValue, 'Dial a node once, now, and print the peer ID reached (or say why not)')
            [CompletionResult]::new('disconnect', 'disconnect', [CompletionResultType]::ParameterValue, 'Close the session with a peer without banning it')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'sorcha-peer;peers;help;list' {
            break
        }
        'sorcha-peer;peers;help;get' {
            break
        }
        'sorcha-peer;peers;help;ban' {
            break
        }
        'sorcha-peer;peers;help;unban' {
            break
        }
        'sorcha-peer;peers;help;reset' {
            break
        }
        'sorcha-peer;peers;help;bans' {
            break
        }
        'sorcha-peer;peers;help;connect' {
            break
        }
        'sorcha-peer;peers;help;disconnect' {
            break
        }
        'sorcha-peer;peers;help;help' {
            break
        }
        'sorcha-peer;registers' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Registers this node holds (as origin or replica)')
            [CompletionResult]::new('available', 'available', [CompletionResultType]::ParameterValue, 'Public registers advertised by connected peers')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a register with this node as its origin')
            [CompletionResult]::new('subscribe', 'subscribe', [CompletionResultType]::ParameterValue, 'Replicate a register from peers')
            [CompletionResult]::new('unsubscribe', 'unsubscribe', [CompletionResultType]::ParameterValue, 'Stop replicating a register (its data is kept unless --purge)')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Delete a replicated register''s data (after unsubscribing)')
            [CompletionResult]::new('subscriptions', 'subscriptions', [CompletionResultType]::ParameterValue, 'Show subscriptions with their state, progress and last error')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'sorcha-peer;registers;list' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;registers;available' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;registers;create' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--public', '--public', [CompletionResultType]::ParameterName, 'Advertise and serve it to peers (private registers never leave this node)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;registers;subscribe' {
            [CompletionResult]::new('--mode', '--mode', [CompletionResultType]::ParameterName, 'full-replica: the whole chain from genesis; forward-only: from the current head on. The same subscription again is a no-op that succeeds')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --wait: give up (exit 1) after this long, e.g. 10m')
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'Show progress and return once fully replicated (or active, for forward-only)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;registers;unsubscribe' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--purge', '--purge', [CompletionResultType]::ParameterName, 'Also delete the replicated data')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;registers;purge' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;registers;subscriptions' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;registers;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Registers this node holds (as origin or replica)')
            [CompletionResult]::new('available', 'available', [CompletionResultType]::ParameterValue, 'Public registers advertised by connected peers')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a register with this node as its origin')
            [CompletionResult]::new('subscribe', 'subscribe', [CompletionResultType]::ParameterValue, 'Replicate a register from peers')
            [CompletionResult]::new('unsubscribe', 'unsubscribe', [CompletionResultType]::ParameterValue, 'Stop replicating a register (its data is kept unless --purge)')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Delete a replicated register''s data (after unsubscribing)')
            [CompletionResult]::new('subscriptions', 'subscriptions', [CompletionResultType]::ParameterValue, 'Show subscriptions with their state, progress and last error')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'sorcha-peer;registers;help;list' {
            break
        }
        'sorcha-peer;registers;help;available' {
            break
        }
        'sorcha-peer;registers;help;create' {
            break
        }
        'sorcha-peer;registers;help;subscribe' {
            break
        }
        'sorcha-peer;registers;help;unsubscribe' {
            break
        }
        'sorcha-peer;registers;help;purge' {
            break
        }
        'sorcha-peer;registers;help;subscriptions' {
            break
        }
        'sorcha-peer;registers;help;help' {
            break
        }
        'sorcha-peer;tx' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('submit', 'submit', [CompletionResultType]::ParameterValue, 'Submit a transaction (the whole input), or one per line with --lines')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show a transaction: pending, or sealed with its version and docket number')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'sorcha-peer;tx;submit' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--lines', '--lines', [CompletionResultType]::ParameterName, 'Submit each non-empty input line as its own transaction; prints one ID per line (with -o json: JSON Lines, one object per input line, the fields a single submit answers), then a count on stderr: stored, held already, not stored. The input is read and sent as it comes, in requests of bounded size; if one fails, the lines printed until then were stored and the lines after them were not')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;tx;get' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;tx;help' {
            [CompletionResult]::new('submit', 'submit', [CompletionResultType]::ParameterValue, 'Submit a transaction (the whole input), or one per line with --lines')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show a transaction: pending, or sealed with its version and docket number')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'sorcha-peer;tx;help;submit' {
            break
        }
        'sorcha-peer;tx;help;get' {
            break
        }
        'sorcha-peer;tx;help;help' {
            break
        }
        'sorcha-peer;lag' {
            [CompletionResult]::new('--against', '--against', [CompletionResultType]::ParameterName, 'The other node''s peer-protocol address (no admin token needed there)')
            [CompletionResult]::new('--register', '--register', [CompletionResultType]::ParameterName, 'Only these registers (repeat the option for several); each named register is judged, held here or not')
            [CompletionResult]::new('--max-lag', '--max-lag', [CompletionResultType]::ParameterName, 'Exit 1 if any register held here is more than N transactions behind (or has diverged), saying why for each. Exit codes: 0 within the limit, 1 over it or forked, 3 this node''s admin API cannot be reached, 5 a named register is not advertised there')
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Also judge the registers the other node advertises and this one does not hold (otherwise they are only shown)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;events' {
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'How many recent events to print first (the node keeps the last `event_history` audit events, 1000 by default, and the last 200 progress events apart)')
            [CompletionResult]::new('--type', '--type', [CompletionResultType]::ParameterName, 'Only events of this type, or of this class: `audit` (connections, bans, verification failures, subscription states, queues at their bound, storage) or `progress` (replication progress, dockets sealed and replicated); repeatable')
            [CompletionResult]::new('--peer', '--peer', [CompletionResultType]::ParameterName, 'Only events that name this peer (ID, unique prefix or name), or this IP address or subnet (bans); a ban covering the peer counts')
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Keep printing events as they happen, until Ctrl-C')
            [CompletionResult]::new('--follow', '--follow', [CompletionResultType]::ParameterName, 'Keep printing events as they happen, until Ctrl-C')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;config' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('default', 'default', [CompletionResultType]::ParameterValue, 'Print an annotated configuration file with every key at its default')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'sorcha-peer;config;default' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;config;help' {
            [CompletionResult]::new('default', 'default', [CompletionResultType]::ParameterValue, 'Print an annotated configuration file with every key at its default')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'sorcha-peer;config;help;default' {
            break
        }
        'sorcha-peer;config;help;help' {
            break
        }
        'sorcha-peer;tls' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('ca', 'ca', [CompletionResultType]::ParameterValue, 'Make a certificate authority in DIR: ca.pem (every node''s tls_ca_file), ca.key (keep it secret), crl.pem (every node''s tls_crl_file)')
            [CompletionResult]::new('issue', 'issue', [CompletionResultType]::ParameterValue, 'Issue a certificate for the node whose data directory --data-dir names (its node.key), signed by the CA in --ca; written to <data-dir>/node-cert.pem unless --out says')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a node certificate: add it to the CA''s crl.pem (nodes re-read it and disconnect the node)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'sorcha-peer;tls;ca' {
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'Directory to create the CA in (created if missing; existing CA files are never overwritten)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'The CA''s name (its certificate''s subject)')
            [CompletionResult]::new('--days', '--days', [CompletionResultType]::ParameterName, 'Days the CA certificate is valid')
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;tls;issue' {
            [CompletionResult]::new('--ca', '--ca', [CompletionResultType]::ParameterName, 'The CA''s directory (from `tls ca`)')
            [CompletionResult]::new('--days', '--days', [CompletionResultType]::ParameterName, 'Days the certificate is valid')
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'Where to write the certificate (PEM) [default: <data-dir>/node-cert.pem]')
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;tls;revoke' {
            [CompletionResult]::new('--ca', '--ca', [CompletionResultType]::ParameterName, 'The CA''s directory (from `tls ca`)')
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;tls;help' {
            [CompletionResult]::new('ca', 'ca', [CompletionResultType]::ParameterValue, 'Make a certificate authority in DIR: ca.pem (every node''s tls_ca_file), ca.key (keep it secret), crl.pem (every node''s tls_crl_file)')
            [CompletionResult]::new('issue', 'issue', [CompletionResultType]::ParameterValue, 'Issue a certificate for the node whose data directory --data-dir names (its node.key), signed by the CA in --ca; written to <data-dir>/node-cert.pem unless --out says')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a node certificate: add it to the CA''s crl.pem (nodes re-read it and disconnect the node)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'sorcha-peer;tls;help;ca' {
            break
        }
        'sorcha-peer;tls;help;issue' {
            break
        }
        'sorcha-peer;tls;help;revoke' {
            break
        }
        'sorcha-peer;tls;help;help' {
            break
        }
        'sorcha-peer;version' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;completions' {
            [CompletionResult]::new('--node', '--node', [CompletionResultType]::ParameterName, 'Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Admin bearer token, or a JWT signed with the node''s jwt_key [default: read from <data-dir>/admin.token]')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'CA certificate(s) (PEM) to trust for an https:// node; only these are trusted')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Node data directory (key, admin token, SQLite database) [default: per-user data dir]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the requested data, no confirmations')
            [CompletionResult]::new('--no-color', '--no-color', [CompletionResultType]::ParameterName, 'Never colour output (also honoured: the NO_COLOR environment variable)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sorcha-peer;help' {
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run a peer node in the foreground')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show the node''s identity, addresses, storage and peer counts')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Check what an operator would check by hand (readiness, storage and disk space, clock, address, certificate, replication, risky settings, file permissions); each item ok, unknown, warning or failing with its fix. Exit 1 when an item fails')
            [CompletionResult]::new('schema', 'schema', [CompletionResultType]::ParameterValue, 'The JSON Schema of an `-o json` output or an admin API body (without NAME: the list), with every field described')
            [CompletionResult]::new('peers', 'peers', [CompletionResultType]::ParameterValue, 'Inspect and manage peers: list, get, connect, disconnect, ban, unban, reset, bans')
            [CompletionResult]::new('registers', 'registers', [CompletionResultType]::ParameterValue, 'Registers: create, list, subscribe to, unsubscribe from, purge')
            [CompletionResult]::new('tx', 'tx', [CompletionResultType]::ParameterValue, 'Transactions: submit and look up')
            [CompletionResult]::new('lag', 'lag', [CompletionResultType]::ParameterValue, 'How far this node is behind another node, per register (exit 1 beyond --max-lag)')
            [CompletionResult]::new('events', 'events', [CompletionResultType]::ParameterValue, 'Print the node''s recent events (peers, bans, replication, storage); --follow streams them. With -o json: JSON Lines, one compact object per event (`jq` reads them as a stream)')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Configuration helpers')
            [CompletionResult]::new('tls', 'tls', [CompletionResultType]::ParameterValue, 'Certificates for peer_tls = "ca": make a CA, issue a node certificate, revoke one')
            [CompletionResult]::new('version', 'version', [CompletionResultType]::ParameterValue, 'Print this binary''s version and the commit it was built from')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script (bash, zsh, fish, elvish, powershell)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'sorcha-peer;help;serve' {
            break
        }
        'sorcha-peer;help;status' {
            break
        }
        'sorcha-peer;help;doctor' {
            break
        }
        'sorcha-peer;help;schema' {
            break
        }
        'sorcha-peer;help;peers' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List known peers')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show one peer in detail, including why its quality score is what it is')
            [CompletionResult]::new('ban', 'ban', [CompletionResultType]::ParameterValue, 'Ban a peer (by ID, unique ID prefix or name), or every peer at an IP address or CIDR subnet')
            [CompletionResult]::new('unban', 'unban', [CompletionResultType]::ParameterValue, 'Lift a ban')
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Set a peer''s failure count and penalties to zero (reports the previous count)')
            [CompletionResult]::new('bans', 'bans', [CompletionResultType]::ParameterValue, 'List bans in force, with time remaining')
            [CompletionResult]::new('connect', 'connect', [CompletionResultType]::ParameterValue, 'Dial a node once, now, and print the peer ID reached (or say why not)')
            [CompletionResult]::new('disconnect', 'disconnect', [CompletionResultType]::ParameterValue, 'Close the session with a peer without banning it')
            break
        }
        'sorcha-peer;help;peers;list' {
            break
        }
        'sorcha-peer;help;peers;get' {
            break
        }
        'sorcha-peer;help;peers;ban' {
            break
        }
        'sorcha-peer;help;peers;unban' {
            break
        }
        'sorcha-peer;help;peers;reset' {
            break
        }
        'sorcha-peer;help;peers;bans' {
            break
        }
        'sorcha-peer;help;peers;connect' {
            break
        }
        'sorcha-peer;help;peers;disconnect' {
            break
        }
        'sorcha-peer;help;registers' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Registers this node holds (as origin or replica)')
            [CompletionResult]::new('available', 'available', [CompletionResultType]::ParameterValue, 'Public registers advertised by connected peers')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a register with this node as its origin')
            [CompletionResult]::new('subscribe', 'subscribe', [CompletionResultType]::ParameterValue, 'Replicate a register from peers')
            [CompletionResult]::new('unsubscribe', 'unsubscribe', [CompletionResultType]::ParameterValue, 'Stop replicating a register (its data is kept unless --purge)')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Delete a replicated register''s data (after unsubscribing)')
            [CompletionResult]::new('subscriptions', 'subscriptions', [CompletionResultType]::ParameterValue, 'Show subscriptions with their state, progress and last error')
            break
        }
        'sorcha-peer;help;registers;list' {
            break
        }
        'sorcha-peer;help;registers;available' {
            break
        }
        'sorcha-peer;help;registers;create' {
            break
        }
        'sorcha-peer;help;registers;subscribe' {
            break
        }
        'sorcha-peer;help;registers;unsubscribe' {
            break
        }
        'sorcha-peer;help;registers;purge' {
            break
        }
        'sorcha-peer;help;registers;subscriptions' {
            break
        }
        'sorcha-peer;help;tx' {
            [CompletionResult]::new('submit', 'submit', [CompletionResultType]::ParameterValue, 'Submit a transaction (the whole input), or one per line with --lines')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show a transaction: pending, or sealed with its version and docket number')
            break
        }
        'sorcha-peer;help;tx;submit' {
            break
        }
        'sorcha-peer;help;tx;get' {
            break
        }
        'sorcha-peer;help;lag' {
            break
        }
        'sorcha-peer;help;events' {
            break
        }
        'sorcha-peer;help;config' {
            [CompletionResult]::new('default', 'default', [CompletionResultType]::ParameterValue, 'Print an annotated configuration file with every key at its default')
            break
        }
        'sorcha-peer;help;config;default' {
            break
        }
        'sorcha-peer;help;tls' {
            [CompletionResult]::new('ca', 'ca', [CompletionResultType]::ParameterValue, 'Make a certificate authority in DIR: ca.pem (every node''s tls_ca_file), ca.key (keep it secret), crl.pem (every node''s tls_crl_file)')
            [CompletionResult]::new('issue', 'issue', [CompletionResultType]::ParameterValue, 'Issue a certificate for the node whose data directory --data-dir names (its node.key), signed by the CA in --ca; written to <data-dir>/node-cert.pem unless --out says')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a node certificate: add it to the CA''s crl.pem (nodes re-read it and disconnect the node)')
            break
        }
        'sorcha-peer;help;tls;ca' {
            break
        }
        'sorcha-peer;help;tls;issue' {
            break
        }
        'sorcha-peer;help;tls;revoke' {
            break
        }
        'sorcha-peer;help;version' {
            break
        }
        'sorcha-peer;help;completions' {
            break
        }
        'sorcha-peer;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
