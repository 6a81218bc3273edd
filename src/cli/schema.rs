//! `sorcha-peer schema [NAME]`: the JSON Schema of each `-o json` output and admin API body,
//! made from the Rust types that produce them, with their doc comments as descriptions, so a
//! script can know every field without reading the code.

use schemars::{JsonSchema, Schema, schema_for};

use super::output::{self, Output, cell, col};
use super::{EXIT_OK, EXIT_USAGE};
use crate::api::*;
use crate::events::Event;

/// (name, what it describes, the schema).
type Entry = (&'static str, &'static str, fn() -> Schema);

fn list_of<T: JsonSchema>() -> Schema {
    schema_for!(Vec<T>)
}

/// Every schema, by the command (or API body) it describes.
pub(super) const SCHEMAS: &[Entry] = &[
    ("status", "status -o json; GET /api/status", || {
        schema_for!(StatusDto)
    }),
    ("doctor", "doctor -o json; GET /api/doctor", || {
        schema_for!(DoctorDto)
    }),
    ("health", "GET /api/health", || schema_for!(HealthDto)),
    (
        "peers-list",
        "peers list -o json; GET /api/peers",
        list_of::<PeerDto>,
    ),
    (
        "peers-get",
        "peers get -o json; GET /api/peers/{id}",
        || schema_for!(PeerDto),
    ),
    (
        "peers-bans",
        "peers bans -o json; GET /api/bans",
        list_of::<BanDto>,
    ),
    (
        "peers-ban",
        "peers ban -o json; the answer to POST /api/bans",
        || schema_for!(BanResponse),
    ),
    ("peers-unban", "peers unban -o json", || {
        schema_for!(UnbanResponse)
    }),
    ("peers-reset", "peers reset -o json", || {
        schema_for!(ResetResponse)
    }),
    (
        "peers-connect",
        "peers connect -o json; POST /api/peers",
        || schema_for!(ConnectResponse),
    ),
    ("peers-disconnect", "peers disconnect -o json", || {
        schema_for!(DisconnectResponse)
    }),
    (
        "registers-list",
        "registers list -o json; GET /api/registers",
        list_of::<RegisterDto>,
    ),
    (
        "registers-available",
        "registers available -o json",
        list_of::<AvailableRegisterDto>,
    ),
    (
        "registers-subscriptions",
        "registers subscriptions -o json",
        list_of::<SubscriptionDto>,
    ),
    ("registers-subscribe", "registers subscribe -o json", || {
        schema_for!(SubscriptionDto)
    }),
    ("registers-create", "registers create -o json", || {
        schema_for!(RegisterDto)
    }),
    (
        "registers-unsubscribe",
        "registers unsubscribe -o json",
        || schema_for!(UnsubscribeResponse),
    ),
    ("registers-purge", "registers purge -o json", || {
        schema_for!(PurgeResponse)
    }),
    (
        "tx-submit",
        "tx submit -o json (with --lines: one per line)",
        || schema_for!(SubmitResponse),
    ),
    ("tx-get", "tx get -o json", || schema_for!(TransactionDto)),
    ("lag", "lag -o json; GET /api/lag", list_of::<LagDto>),
    (
        "event",
        "events -o json (one per line); GET /api/events",
        || schema_for!(Event),
    ),
    ("ban-request", "the body of POST /api/bans", || {
        schema_for!(BanRequest)
    }),
    ("connect-request", "the body of POST /api/peers", || {
        schema_for!(ConnectRequest)
    }),
    (
        "create-register-request",
        "the body of POST /api/registers",
        || schema_for!(CreateRegisterRequest),
    ),
    (
        "subscribe-request",
        "the body of POST /api/registers/{id}/subscribe",
        || schema_for!(SubscribeRequest),
    ),
    (
        "batch-request",
        "the body of POST /api/registers/{id}/transactions/batch",
        || schema_for!(BatchSubmitRequest),
    ),
    ("batch-response", "its answer", || {
        schema_for!(BatchSubmitResponse)
    }),
    ("error", "the body of every answer that is not 2xx", || {
        schema_for!(ErrorBody)
    }),
];

/// The schema named `name`.
pub(super) fn schema(name: &str) -> Option<Schema> {
    SCHEMAS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, f)| f())
}

/// Without a name: the list. With one: its schema, pretty-printed (exit 2 for an unknown one).
pub(super) fn run(out: &Output, name: Option<&str>) -> i32 {
    let Some(name) = name else {
        let mut table = out.table(vec![col("NAME"), col("DESCRIBES").wrap()]);
        for (name, what, _) in SCHEMAS {
            table.add_row(vec![cell(name), cell(what)]);
        }
        out.print_table(&table);
        return EXIT_OK;
    };
    match schema(name).map(|s| serde_json::to_string_pretty(&s)) {
        Some(Ok(text)) => {
            output::write_stdout(format!("{text}\n").as_bytes());
            EXIT_OK
        }
        Some(Err(e)) => {
            out.error(&format!("cannot encode the schema: {e}"));
            super::EXIT_FAILED
        }
        None => {
            let names: Vec<&str> = SCHEMAS.iter().map(|(n, _, _)| *n).collect();
            out.error(&format!(
                "no schema named '{name}'; one of: {}",
                names.join(", ")
            ));
            EXIT_USAGE
        }
    }
}
