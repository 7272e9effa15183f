//! Every message's fields as a nested JSON value, the `fields` of `btcpeer decode`'s `message`
//! event; and the names of service bits and address networks the other subcommands' events use.
//!
//! Unlike the events themselves (typed enums, see `events`), the fields stay `serde_json::Value`s
//! built with `json!`: they are data to show, not keys any code reads back (decode's text form
//! walks the value generically, nesting objects and lists), and a typed struct with its own text
//! form for each of the 36 message types, their inputs, outputs, headers and entries would add
//! several hundred lines that say the same as the `json!` literals do.

use btcpeer::bitcoin::hashes::Hash;
use btcpeer::bitcoin::hex::DisplayHex;
use btcpeer::bitcoin::p2p::address::AddrV2;
use btcpeer::bitcoin::p2p::{Address, ServiceFlags};
use btcpeer::bitcoin::{
    Address as BitcoinAddress, Denomination, Network as BitcoinNetwork, Script, Transaction, block::Header,
};
use btcpeer::wire::{Inventory, Message};
use serde_json::{Value, json};

/// The names of the service bits that are set.
pub fn service_names(services: ServiceFlags) -> Vec<&'static str> {
    let table = [
        (ServiceFlags::NETWORK, "NETWORK"),
        (ServiceFlags::GETUTXO, "GETUTXO"),
        (ServiceFlags::BLOOM, "BLOOM"),
        (ServiceFlags::WITNESS, "WITNESS"),
        (ServiceFlags::COMPACT_FILTERS, "COMPACT_FILTERS"),
        (ServiceFlags::NETWORK_LIMITED, "NETWORK_LIMITED"),
        (ServiceFlags::P2P_V2, "P2P_V2"),
    ];
    table.iter().filter(|(f, _)| services.has(*f)).map(|&(_, n)| n).collect()
}

fn rev_hex(bytes: [u8; 32]) -> String {
    let mut b = bytes;
    b.reverse();
    b.to_lower_hex_string()
}

fn address(a: &Address) -> Value {
    let ip = std::net::Ipv6Addr::from(a.address);
    let ip = ip.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or_else(|| ip.to_string());
    json!({"services": a.services.to_u64(), "ip": ip, "port": a.port})
}

/// The BIP155 network an address is on: `ipv4`, `ipv6`, `torv2`, `torv3`, `i2p`, `cjdns` or
/// `unknown`.
pub fn addrv2_network(a: &AddrV2) -> &'static str {
    match a {
        AddrV2::Ipv4(_) => "ipv4",
        AddrV2::Ipv6(_) => "ipv6",
        AddrV2::TorV2(_) => "torv2",
        AddrV2::TorV3(_) => "torv3",
        AddrV2::I2p(_) => "i2p",
        AddrV2::Cjdns(_) => "cjdns",
        AddrV2::Unknown(..) => "unknown",
    }
}

/// The address's network and the address as text.
fn addrv2(a: &AddrV2) -> (&'static str, String) {
    let text = match a {
        AddrV2::Ipv4(ip) => ip.to_string(),
        AddrV2::Ipv6(ip) => ip.to_string(),
        AddrV2::TorV2(b) => b.to_lower_hex_string(),
        AddrV2::TorV3(b) => b.to_lower_hex_string(),
        AddrV2::I2p(b) => b.to_lower_hex_string(),
        AddrV2::Cjdns(ip) => ip.to_string(),
        AddrV2::Unknown(id, b) => format!("{id}:{}", b.to_lower_hex_string()),
    };
    (addrv2_network(a), text)
}

fn inventory(items: &[Inventory]) -> Value {
    let list: Vec<Value> = items
        .iter()
        .map(|i| json!({"type": i.inv_type(), "type_name": i.type_name(), "hash": rev_hex(i.hash_bytes())}))
        .collect();
    json!({"count": items.len(), "inventory": list})
}

fn header(h: &Header) -> Value {
    json!({
        "hash": h.block_hash().to_string(),
        "version": h.version.to_consensus(),
        "prev": h.prev_blockhash.to_string(),
        "merkle_root": h.merkle_root.to_string(),
        "time": h.time,
        "bits": format!("{:#010x}", h.bits.to_consensus()),
        "nonce": h.nonce,
    })
}

/// What kind of script an output pays to.
fn script_type(script: &Script) -> &'static str {
    /// Whether a script is of one kind.
    type Is = fn(&Script) -> bool;
    /// The standard kinds, in the order they are tried.
    const KINDS: [(Is, &str); 8] = [
        (Script::is_p2pkh, "p2pkh"),
        (Script::is_p2sh, "p2sh"),
        (Script::is_p2wpkh, "p2wpkh"),
        (Script::is_p2wsh, "p2wsh"),
        (Script::is_p2tr, "p2tr"),
        (Script::is_p2pk, "p2pk"),
        (Script::is_op_return, "op_return"),
        (Script::is_multisig, "multisig"),
    ];
    match KINDS.iter().find(|(is, _)| is(script)) {
        Some((_, name)) => name,
        None if script.witness_version().is_some() => "witness_unknown",
        None => "nonstandard",
    }
}

/// A transaction with every field: each input (prevout, script_sig in hex and asm, sequence, witness
/// items) and each output (value, script_pubkey in hex and asm, its type, and its address on
/// `network` when it has one).
fn tx(t: &Transaction, network: Option<BitcoinNetwork>) -> Value {
    let inputs: Vec<Value> = t
        .input
        .iter()
        .map(|i| {
            json!({
                "prevout": i.previous_output.to_string(),
                "txid": i.previous_output.txid.to_string(),
                "vout": i.previous_output.vout,
                "script_sig": i.script_sig.as_bytes().to_lower_hex_string(),
                "script_sig_asm": i.script_sig.to_asm_string(),
                "sequence": i.sequence.0,
                "witness": i.witness.iter().map(|w| w.to_lower_hex_string()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let outputs: Vec<Value> = t
        .output
        .iter()
        .map(|o| {
            let address = network.and_then(|n| BitcoinAddress::from_script(&o.script_pubkey, n).ok());
            json!({
                "value_sat": o.value.to_sat(),
                "value_btc": o.value.to_string_in(Denomination::Bitcoin),
                "script_pubkey": o.script_pubkey.as_bytes().to_lower_hex_string(),
                "script_pubkey_asm": o.script_pubkey.to_asm_string(),
                "type": script_type(&o.script_pubkey),
                "address": address.map(|a| a.to_string()),
            })
        })
        .collect();
    json!({
        "txid": t.compute_txid().to_string(),
        "wtxid": t.compute_wtxid().to_string(),
        "version": t.version.0,
        "locktime": t.lock_time.to_consensus_u32(),
        "size": t.total_size(),
        "vsize": t.vsize(),
        "weight": t.weight().to_wu(),
        "segwit": t.input.iter().any(|i| !i.witness.is_empty()),
        "input_count": t.input.len(),
        "output_count": t.output.len(),
        "inputs": inputs,
        "outputs": outputs,
    })
}

/// A transaction's identity and size only (`--summary`).
fn tx_summary(t: &Transaction) -> Value {
    json!({
        "txid": t.compute_txid().to_string(),
        "wtxid": t.compute_wtxid().to_string(),
        "size": t.total_size(),
        "weight": t.weight().to_wu(),
        "input_count": t.input.len(),
        "output_count": t.output.len(),
    })
}

fn hashes<'a>(it: impl Iterator<Item = [u8; 32]> + 'a) -> Vec<String> {
    it.map(rev_hex).collect()
}

/// How much of a message `message_fields` shows.
#[derive(Clone, Copy, Debug, Default)]
pub struct Detail {
    /// The network whose addresses outputs are shown in (none for simnet and custom networks).
    pub network: Option<BitcoinNetwork>,
    /// Blocks and transaction lists as counts and ids only.
    pub summary: bool,
}

/// The message's fields as a JSON object.
pub fn message_fields(msg: &Message, detail: Detail) -> Value {
    let txs = |list: &[Transaction]| -> Vec<Value> {
        list.iter().map(|t| if detail.summary { tx_summary(t) } else { tx(t, detail.network) }).collect()
    };
    match msg {
        Message::Version(v) => json!({
            "version": v.version,
            "services": v.services.to_u64(),
            "service_names": service_names(v.services),
            "timestamp": v.timestamp,
            "addr_recv": address(&v.receiver),
            "addr_from": address(&v.sender),
            "nonce": v.nonce,
            "user_agent": v.user_agent,
            "start_height": v.start_height,
            "relay": v.relay,
            "fields_present": format!("{:?}", v.tail),
        }),
        Message::Addr(list) => {
            let addrs: Vec<Value> = list
                .iter()
                .map(|(time, a)| {
                    let mut v = address(a);
                    v["time"] = json!(time);
                    v
                })
                .collect();
            json!({"count": list.len(), "addrs": addrs})
        }
        Message::AddrV2(list) => {
            let addrs: Vec<Value> = list
                .iter()
                .map(|a| {
                    let (net, addr) = addrv2(&a.addr);
                    json!({"time": a.time, "services": a.services.to_u64(), "net": net, "addr": addr, "port": a.port})
                })
                .collect();
            json!({"count": list.len(), "addrs": addrs})
        }
        Message::Inv(items) | Message::GetData(items) | Message::NotFound(items) => inventory(items),
        Message::GetBlocks(m) => json!({
            "version": m.version,
            "locator": m.locator_hashes.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
            "stop_hash": m.stop_hash.to_string(),
        }),
        Message::GetHeaders(m) => json!({
            "version": m.version,
            "locator": m.locator_hashes.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
            "stop_hash": m.stop_hash.to_string(),
        }),
        Message::Headers(list) => json!({
            "count": list.len(),
            "headers": list.iter().map(header).collect::<Vec<_>>(),
        }),
        Message::Block(b) => {
            let mut v = header(&b.header);
            v["tx_count"] = json!(b.txdata.len());
            v["size"] = json!(b.total_size());
            v["weight"] = json!(b.weight().to_wu());
            v["merkle_root_ok"] = json!(b.check_merkle_root());
            v["witness_commitment_ok"] = json!(b.check_witness_commitment());
            v["transactions"] = json!(txs(&b.txdata));
            v
        }
        Message::Tx(t) => tx(t, detail.network),
        Message::Ping(n) | Message::Pong(n) => json!({"nonce": n}),
        Message::Reject(r) => json!({
            "message": r.message,
            "code": r.code.0,
            "code_name": r.code.name(),
            "reason": r.reason,
            "hash": r.hash.map(rev_hex),
        }),
        Message::FeeFilter(rate) => json!({"feerate_sat_per_kvb": rate}),
        Message::FilterLoad(f) => json!({
            "filter": f.filter.to_lower_hex_string(),
            "size": f.filter.len(),
            "hash_funcs": f.hash_funcs,
            "tweak": f.tweak,
            "flags": f.flags,
        }),
        Message::FilterAdd(f) => json!({"data": f.data.to_lower_hex_string()}),
        Message::MerkleBlock(m) => {
            let mut v = header(&m.header);
            v["total_transactions"] = json!(m.txn.num_transactions());
            v["hashes"] = json!(hashes(m.txn.hashes().iter().map(|h| h.to_byte_array())));
            v["flag_bits"] = json!(m.txn.bits().iter().map(|&b| u8::from(b)).collect::<Vec<_>>());
            v
        }
        Message::SendCmpct(s) => json!({"announce": s.send_compact, "version": s.version}),
        Message::CmpctBlock(c) => json!({
            "block_hash": c.header.block_hash().to_string(),
            "header": header(&c.header),
            "nonce": c.nonce,
            "short_id_count": c.short_ids.len(),
            "short_ids": c.short_ids.iter().map(|id| id.as_bytes().to_lower_hex_string()).collect::<Vec<_>>(),
            "prefilled": c.prefilled_txs.iter().map(|p| {
                let mut v = if detail.summary { tx_summary(&p.tx) } else { tx(&p.tx, detail.network) };
                v["index"] = json!(p.idx);
                v
            }).collect::<Vec<_>>(),
        }),
        Message::GetBlockTxn(r) => {
            json!({"block_hash": r.block_hash.to_string(), "indexes": r.indexes})
        }
        Message::BlockTxn(b) => json!({
            "block_hash": b.block_hash.to_string(),
            "transactions": txs(&b.transactions),
        }),
        Message::GetCFilters(m) => {
            json!({"filter_type": m.filter_type, "start_height": m.start_height, "stop_hash": m.stop_hash.to_string()})
        }
        Message::GetCFHeaders(m) => {
            json!({"filter_type": m.filter_type, "start_height": m.start_height, "stop_hash": m.stop_hash.to_string()})
        }
        Message::GetCFCheckpt(m) => {
            json!({"filter_type": m.filter_type, "stop_hash": m.stop_hash.to_string()})
        }
        Message::CFilter(m) => json!({
            "filter_type": m.filter_type,
            "block_hash": m.block_hash.to_string(),
            "filter": m.filter.to_lower_hex_string(),
        }),
        Message::CFHeaders(m) => json!({
            "filter_type": m.filter_type,
            "stop_hash": m.stop_hash.to_string(),
            "previous_filter_header": rev_hex(m.previous_filter_header.to_byte_array()),
            "filter_hashes": hashes(m.filter_hashes.iter().map(|h| h.to_byte_array())),
        }),
        Message::CFCheckpt(m) => json!({
            "filter_type": m.filter_type,
            "stop_hash": m.stop_hash.to_string(),
            "filter_headers": hashes(m.filter_headers.iter().map(|h| h.to_byte_array())),
        }),
        Message::SendTxRcncl(m) => json!({"version": m.version, "salt": m.salt}),
        Message::Unknown { command, payload } => {
            json!({"unknown_command": command.as_str(), "payload": payload.to_lower_hex_string()})
        }
        // Messages without fields (verack, sendaddrv2, mempool, getaddr, sendheaders, filterclear,
        // wtxidrelay) and any added later.
        _ => json!({}),
    }
}
