//! Completion scripts and man pages, generated from the clap definitions. The committed copies
//! in `completions/` and `man/` are checked against these by a test (and rewritten by it when
//! `UPDATE_GENERATED=1`).

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::{Generator, Shell};

use super::Cli;

const BIN: &str = "sorcha-peer";
/// The name the bash script is generated under: clap_complete's bash generator mangles a
/// hyphenated name inconsistently (its dispatch says `sorcha__peer__subcmd__peers`, its cases
/// `sorcha__subcmd__peer__subcmd__peers`), so every level below the top completed file names.
/// Generated as `sorcha_peer`, then registered for `sorcha-peer`.
const BASH_IDENT: &str = "sorcha_peer";

/// The hidden commands the scripts call to complete peer IDs and names, and register names,
/// from the node.
pub const COMPLETE_PEERS: &str = "__complete-peers";
pub const COMPLETE_REGISTERS: &str = "__complete-registers";

/// Subcommands (below `peers`) whose first argument is a peer.
const PEER_ARGUMENT_COMMANDS: [&str; 5] = ["get", "ban", "unban", "reset", "disconnect"];

/// Subcommands (group, command) whose first argument is a register.
const REGISTER_ARGUMENT_COMMANDS: [(&str, &str); 5] = [
    ("registers", "subscribe"),
    ("registers", "unsubscribe"),
    ("registers", "purge"),
    ("tx", "submit"),
    ("tx", "get"),
];

/// Shells with a committed completion script.
pub const SHELLS: [Shell; 5] = [
    Shell::Bash,
    Shell::Zsh,
    Shell::Fish,
    Shell::Elvish,
    Shell::PowerShell,
];

/// Writes the completion script for `shell`: subcommands complete at every level, and (bash,
/// zsh, fish) peer arguments complete with the IDs of the peers the node knows, asked through
/// the hidden `__complete-peers` command, which prints nothing when the node cannot be reached.
pub fn completion(shell: Shell, out: &mut dyn Write) -> std::io::Result<()> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    let name = if shell == Shell::Bash {
        BASH_IDENT
    } else {
        BIN
    };
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    let script = String::from_utf8_lossy(&script).into_owned();
    let script = match shell {
        Shell::Bash => bash(&script),
        Shell::Zsh => zsh(&script),
        Shell::Fish => fish(&script),
        _ => script,
    };
    out.write_all(script.as_bytes())
}

/// Registers the script for `sorcha-peer` and completes peer arguments with peer IDs.
fn bash(script: &str) -> String {
    let mut out = String::with_capacity(script.len() + 1024);
    for line in script.lines() {
        let line = match line.strip_suffix(&format!(" -o default {BASH_IDENT}")) {
            Some(head) if line.trim_start().starts_with("complete -F") => {
                format!("{head} -o default {BIN}")
            }
            _ => line.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
        // The first argument of these subcommands is a peer: offer the node's peer IDs
        // (nothing is offered, and the usual completion follows, when the node is down).
        let case = line.trim();
        if let Some(sub) = case
            .strip_prefix(&format!("{BASH_IDENT}__subcmd__peers__subcmd__"))
            .and_then(|rest| rest.strip_suffix(')'))
            && PEER_ARGUMENT_COMMANDS.contains(&sub)
        {
            out.push_str(
                "            if [[ ${cur} != -* && ${prev} != -* ]] && _sorcha_peer_peer_ids \"${cur}\"; then\n                return 0\n            fi\n",
            );
        }
        // The first argument of these is a register: offer the node's (at that position only).
        let is_register_command = REGISTER_ARGUMENT_COMMANDS
            .iter()
            .any(|(group, sub)| case == format!("{BASH_IDENT}__subcmd__{group}__subcmd__{sub})"));
        if is_register_command {
            out.push_str(
                "            if [[ ${cur} != -* && ${prev} != -* ]] && _sorcha_peer_first_argument && _sorcha_peer_registers \"${cur}\"; then\n                return 0\n            fi\n",
            );
        }
    }
    out.push_str(&format!(
        r#"
# Peer IDs known to the node the command line names (--node, --token, --data-dir), for the
# arguments that take a peer; fails quietly (no candidates) when the node is down.
_sorcha_peer_peer_ids() {{
    local ids
    ids="$("${{COMP_WORDS[0]}}" {COMPLETE_PEERS} -- "${{COMP_WORDS[@]:0:COMP_CWORD}}" 2>/dev/null)"
    [[ -n "${{ids}}" ]] || return 1
    COMPREPLY=( $(compgen -W "${{ids}}" -- "$1") )
    [[ ${{#COMPREPLY[@]}} -gt 0 ]]
}}

# Registers held by, or advertised to, the node the command line names.
_sorcha_peer_registers() {{
    local names
    names="$("${{COMP_WORDS[0]}}" {COMPLETE_REGISTERS} -- "${{COMP_WORDS[@]:0:COMP_CWORD}}" 2>/dev/null)"
    [[ -n "${{names}}" ]] || return 1
    COMPREPLY=( $(compgen -W "${{names}}" -- "$1") )
    [[ ${{#COMPREPLY[@]}} -gt 0 ]]
}}

# Whether the word being completed is the subcommand's first argument (no other word after
# the subcommand yet but options and their values).
_sorcha_peer_first_argument() {{
    local i seen=0
    for (( i = 2; i < COMP_CWORD; i++ )); do
        case "${{COMP_WORDS[i]}}" in
            -*) ;;
            *) case "${{COMP_WORDS[i-1]}}" in
                   --node|--token|--cacert|--data-dir|--mode|-o|--output) ;;
                   *) seen=$((seen + 1)) ;;
               esac ;;
        esac
    done
    # The group and the subcommand are the first two words that are not options.
    [[ ${{seen}} -le 2 ]]
}}
"#
    ));
    out
}

/// Completes peer arguments with peer IDs.
fn zsh(script: &str) -> String {
    let mut out = String::with_capacity(script.len() + 1024);
    for line in script.lines() {
        let is_peer_arg = (line.starts_with("':peer -- ") || line.starts_with("':target -- "))
            && line.ends_with(":_default' \\");
        // `registers create` names a new register (its argument has help): none offered there.
        let is_register_arg = line == "':register:_default' \\";
        if is_peer_arg {
            out.push_str(&line.replace(":_default' \\", ":_sorcha_peer_peer_ids' \\"));
        } else if is_register_arg {
            out.push_str(&line.replace(":_default' \\", ":_sorcha_peer_registers' \\"));
        } else {
            if line.starts_with("if [ \"$funcstack[1]\" = ") {
                out.push_str(&format!(
                    r#"(( $+functions[_sorcha_peer_peer_ids] )) ||
_sorcha_peer_peer_ids() {{
    local -a ids
    ids=(${{(f)"$(${{words[1]}} {COMPLETE_PEERS} -- ${{words[1,CURRENT-1]}} 2>/dev/null)"}})
    compadd -a ids
}}

(( $+functions[_sorcha_peer_registers] )) ||
_sorcha_peer_registers() {{
    local -a names
    names=(${{(f)"$(${{words[1]}} {COMPLETE_REGISTERS} -- ${{words[1,CURRENT-1]}} 2>/dev/null)"}})
    compadd -a names
}}

"#
                ));
            }
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Completes peer arguments with peer IDs.
fn fish(script: &str) -> String {
    let mut out = script.to_string();
    out.push_str(&format!(
        r#"
# Peer IDs known to the node the command line names, for the arguments that take a peer.
function __fish_sorcha_peer_peer_ids
    set -l cmd (commandline -opc)
    $cmd[1] {COMPLETE_PEERS} -- $cmd 2>/dev/null
end
complete -c {BIN} -n "__fish_sorcha_peer_using_subcommand peers; and __fish_seen_subcommand_from {}" -f -a "(__fish_sorcha_peer_peer_ids)"

# Registers held by, or advertised to, the node the command line names.
function __fish_sorcha_peer_registers
    set -l cmd (commandline -opc)
    $cmd[1] {COMPLETE_REGISTERS} -- $cmd 2>/dev/null
end
complete -c {BIN} -n "__fish_sorcha_peer_using_subcommand registers; and __fish_seen_subcommand_from subscribe unsubscribe purge" -f -a "(__fish_sorcha_peer_registers)"
complete -c {BIN} -n "__fish_sorcha_peer_using_subcommand tx; and __fish_seen_subcommand_from submit get" -f -a "(__fish_sorcha_peer_registers)"
"#,
        PEER_ARGUMENT_COMMANDS.join(" ")
    ));
    out
}

/// Writes every completion script into `dir`.
pub fn write_completions(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for shell in SHELLS {
        let mut file = std::fs::File::create(dir.join(shell.file_name(BIN)))?;
        completion(shell, &mut file)?;
    }
    Ok(())
}

/// Writes a man page for the command and every subcommand into `dir` (see [`super::manpages`]).
pub fn write_man_pages(dir: &Path) -> std::io::Result<()> {
    super::manpages::write_man_pages(dir)
}
