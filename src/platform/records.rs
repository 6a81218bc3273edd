//! A docket as the platform reads it in `SyncDocketEntry`: the text forms of hashes and
//! signatures, and `docket_data`, a JSON list of the platform's transaction records (its
//! `TransactionModel`, field names matched case-insensitively by the Register service).
//!
//! This node's transactions are opaque payloads, so a record carries what is true of them and
//! nothing it would have to invent:
//!
//! | record field | value |
//! |---|---|
//! | `@id` | `did:sorcha:register:{registerId}/tx/{txId}` |
//! | `registerId` | the register |
//! | `txId` | the transaction ID: lower-case hex SHA-256 of the payload (64 characters) |
//! | `docketNumber` | the docket it is sealed in |
//! | `timeStamp` | the docket's sealing time, RFC 3339 UTC with milliseconds |
//! | `senderWallet`, `signature` | `""`; `recipientsWallets`: `[]` (this node knows no wallets) |
//! | `payloadCount` | `1` |
//! | `payloads` | one: `hash` (hex SHA-256 = `txId`), `payloadSize` (bytes), `data` (the payload, base64url without padding), `contentEncoding` `"base64url"` |
//!
//! `metaData` is absent, so the Register service routes none of them as actions. When the
//! records of one docket would pass [`MAX_DOCKET_DATA_BYTES`], every record is sent without
//! its `data` (hash and size stay): the entry then still fits a .NET client's default 4 MiB
//! receive limit. Hashes, the Merkle root and the previous docket's hash are lower-case hex
//! (empty for the genesis docket's predecessor); `validator_signature` is the origin's Ed25519
//! signature over the docket hash in base64url without padding, and `validator_id` the
//! origin's peer ID.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::clock::to_rfc3339;
use crate::ledger::{DocketWithTransactions, tx_id};

/// Most bytes of `docket_data` with payload data in it; past it, records go without `data`.
pub(crate) const MAX_DOCKET_DATA_BYTES: usize = 3 * 1024 * 1024;

/// One of the platform's transaction records.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    #[serde(rename = "@id")]
    id: String,
    register_id: &'a str,
    tx_id: String,
    docket_number: u64,
    time_stamp: &'a str,
    sender_wallet: &'static str,
    recipients_wallets: [&'static str; 0],
    payload_count: u32,
    payloads: [Payload; 1],
    signature: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    hash: String,
    payload_size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_encoding: Option<&'static str>,
}

/// `docket_data` for a docket and its payloads (see the module documentation).
pub(crate) fn docket_data(entry: &DocketWithTransactions) -> Result<Vec<u8>, serde_json::Error> {
    let full = encode(entry, true)?;
    if full.len() <= MAX_DOCKET_DATA_BYTES {
        return Ok(full);
    }
    encode(entry, false)
}

fn encode(entry: &DocketWithTransactions, with_data: bool) -> Result<Vec<u8>, serde_json::Error> {
    let header = &entry.docket.header;
    let time_stamp = to_rfc3339(header.sealed_at_ms);
    let records: Vec<Record<'_>> = entry
        .transactions
        .iter()
        .map(|payload| {
            let tx_id = tx_id(payload);
            Record {
                id: format!("did:sorcha:register:{}/tx/{tx_id}", header.register_id),
                register_id: &header.register_id,
                docket_number: header.number,
                time_stamp: &time_stamp,
                sender_wallet: "",
                recipients_wallets: [],
                payload_count: 1,
                payloads: [Payload {
                    hash: tx_id.clone(),
                    payload_size: payload.len(),
                    data: with_data.then(|| URL_SAFE_NO_PAD.encode(payload)),
                    content_encoding: with_data.then_some("base64url"),
                }],
                signature: "",
                tx_id,
            }
        })
        .collect();
    serde_json::to_vec(&records)
}

/// A hash as the platform writes it: lower-case hex.
pub(crate) fn hash_text(hash: &[u8]) -> String {
    hex::encode(hash)
}

/// A signature as the platform writes it: base64url without padding.
pub(crate) fn signature_text(signature: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Docket, DocketHeader};

    fn entry(payloads: Vec<Vec<u8>>) -> DocketWithTransactions {
        DocketWithTransactions {
            docket: Docket {
                header: DocketHeader {
                    register_id: "reg".into(),
                    number: 3,
                    previous_hash: [1; 32],
                    merkle_root: [2; 32],
                    tx_count: payloads.len() as u32,
                    first_version: 5,
                    sealed_at_ms: 1_700_000_000_123,
                },
                signature: vec![7; 64],
            },
            origin_key: None,
            transactions: payloads,
        }
    }

    #[test]
    fn records_carry_the_payloads_as_the_platform_reads_them() {
        let data =
            docket_data(&entry(vec![b"hello".to_vec(), b"{\"a\":1}".to_vec()])).expect("encodes");
        let records: Vec<serde_json::Value> = serde_json::from_slice(&data).expect("json list");
        assert_eq!(records.len(), 2);
        let r = &records[0];
        let id = tx_id(b"hello");
        assert_eq!(r["txId"], id.as_str());
        assert_eq!(r["registerId"], "reg");
        assert_eq!(r["docketNumber"], 3);
        assert_eq!(r["timeStamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(r["@id"], format!("did:sorcha:register:reg/tx/{id}"));
        assert_eq!(r["recipientsWallets"], serde_json::json!([]));
        assert!(r.get("metaData").is_none());
        assert_eq!(r["payloads"][0]["hash"], id.as_str());
        assert_eq!(r["payloads"][0]["payloadSize"], 5);
        assert_eq!(r["payloads"][0]["data"], "aGVsbG8");
        assert_eq!(r["payloads"][0]["contentEncoding"], "base64url");
        assert_eq!(docket_data(&entry(vec![])).expect("encodes"), b"[]");
    }

    #[test]
    fn an_oversized_docket_goes_without_payload_data() {
        let big = vec![0u8; 2 * 1024 * 1024];
        let data = docket_data(&entry(vec![big.clone(), big])).expect("encodes");
        assert!(data.len() < MAX_DOCKET_DATA_BYTES);
        let records: Vec<serde_json::Value> = serde_json::from_slice(&data).expect("json list");
        assert_eq!(records.len(), 2);
        assert!(records[0]["payloads"][0].get("data").is_none());
        assert_eq!(records[0]["payloads"][0]["payloadSize"], 2 * 1024 * 1024);
    }

    #[test]
    fn text_forms() {
        assert_eq!(hash_text(&[0xab, 0x01]), "ab01");
        assert_eq!(signature_text(&[0xfb, 0xff]), "-_8");
    }
}
