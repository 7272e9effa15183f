//! R-C4: `btcpeer decode` prints each frame's fields, re-encodes them, reports bad frames as typed
//! `error` events and carries on.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

const VERACK: &str = "fabfb5da76657261636b000000000000000000005df6e0e2";
const PING: &str = "fabfb5da70696e6700000000000000000800000075f05e6e0123456789abcdef";

fn btcpeer(args: &[&str], stdin: &str) -> (i32, Vec<Value>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_btcpeer"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("writes");
    let out = child.wait_with_output().expect("finishes");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let events = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    (out.status.code().unwrap_or(-1), events, text)
}

#[test]
fn r_c4_decode_prints_fields_and_reencodes() {
    let ping = {
        // Build a valid ping frame with the library so the checksum is right.
        let mut buf = bytes::BytesMut::new();
        btcpeer::wire::frame::encode_frame(
            &btcpeer::wire::Message::Ping(0x0123_4567_89ab_cdef),
            &btcpeer::network::Network::REGTEST,
            &mut buf,
        )
        .expect("encodes");
        buf.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let (code, events, _) = btcpeer(&["decode", "--network", "regtest", "--json", "--reencode", VERACK, &ping], "");
    assert_eq!(code, 0);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["event"], "message");
    assert_eq!(events[0]["command"], "verack");
    assert_eq!(events[0]["payload_size"], 0);
    assert_eq!(events[0]["checksum_ok"], true);
    assert_eq!(events[0]["reencoded_hex"], VERACK);
    assert_eq!(events[1]["fields"]["nonce"], 0x0123_4567_89ab_cdef_u64);
    assert_eq!(events[1]["reencoded_hex"], ping.as_str());
}

#[test]
fn r_c4_bad_frames_print_a_typed_error_and_decoding_carries_on() {
    // A ping with a wrong checksum, then invalid hex, then a good verack (read from stdin).
    let input = format!("{PING}\nzz\n{VERACK}\n");
    let (code, events, _) = btcpeer(&["decode", "--network", "regtest", "--json", "-"], &input);
    assert_eq!(code, 1, "a bad frame makes the run a failure");
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["event"], "error");
    assert_eq!(events[0]["kind"], "bad_checksum");
    assert_eq!(events[0]["checksum_ok"], false);
    assert_eq!(events[1]["kind"], "invalid_hex");
    assert_eq!(events[2]["command"], "verack");
}

#[test]
fn r_c4_wrong_network_and_human_output() {
    let (code, events, _) = btcpeer(&["decode", "--json", VERACK], "");
    assert_eq!(code, 1);
    assert_eq!(events[0]["kind"], "wrong_magic");
    let (code, _, text) = btcpeer(&["decode", "--network", "regtest", VERACK], "");
    assert_eq!(code, 0);
    assert!(text.starts_with("#0 verack (0 payload bytes, checksum ok)"), "{text}");
}

#[test]
fn r_c4_usage_errors_exit_2() {
    let (code, _, _) = btcpeer(&["decode", "--network", "nonsense", VERACK], "");
    assert_eq!(code, 2);
    let (code, _, _) = btcpeer(&["decode", "--no-such-flag"], "");
    assert_eq!(code, 2);
}

fn frame_hex(message: &btcpeer::wire::Message, network: &btcpeer::network::Network) -> String {
    let mut buf = bytes::BytesMut::new();
    btcpeer::wire::frame::encode_frame(message, network, &mut buf).expect("encodes");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A transaction spending `prev:0` with `script_sig` and `witness`, paying 5,000 sat to `script`.
fn tx_with(
    script_sig: btcpeer::bitcoin::ScriptBuf,
    witness: Vec<Vec<u8>>,
    script: btcpeer::bitcoin::ScriptBuf,
) -> btcpeer::bitcoin::Transaction {
    use btcpeer::bitcoin::hashes::Hash;
    use btcpeer::bitcoin::{
        Amount, OutPoint, Sequence, Transaction, TxIn, TxOut, Txid, Witness, absolute, transaction,
    };
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::from_consensus(840_000),
        input: vec![TxIn {
            previous_output: OutPoint { txid: Txid::from_byte_array([7; 32]), vout: 3 },
            script_sig,
            sequence: Sequence(0xffff_fffd),
            witness: Witness::from_slice(&witness),
        }],
        output: vec![TxOut { value: Amount::from_sat(5_000), script_pubkey: script }],
    }
}

#[test]
fn r_c4_decode_prints_every_field_of_legacy_segwit_and_taproot_transactions() {
    use btcpeer::bitcoin::hashes::Hash;
    use btcpeer::bitcoin::key::{TapTweak, XOnlyPublicKey};
    use btcpeer::bitcoin::script::Builder;
    use btcpeer::bitcoin::{Address, Network as BitcoinNetwork, PubkeyHash, ScriptBuf, WPubkeyHash};
    let net = btcpeer::network::Network::MAINNET;
    let sig = vec![0x30; 71];
    let key = vec![0x02; 33];
    let xonly = XOnlyPublicKey::from_slice(&[
        0x79, 0xbe, 0x66, 0x7e, 0xf9, 0xdc, 0xbb, 0xac, 0x55, 0xa0, 0x62, 0x95, 0xce, 0x87, 0x0b, 0x07, 0x02, 0x9b,
        0xfc, 0xdb, 0x2d, 0xce, 0x28, 0xd9, 0x59, 0xf2, 0x81, 0x5b, 0x16, 0xf8, 0x17, 0x98,
    ])
    .expect("the generator's x");
    let legacy_sig = Builder::new()
        .push_slice(<&btcpeer::bitcoin::script::PushBytes>::try_from(&sig[..]).unwrap())
        .push_slice(<&btcpeer::bitcoin::script::PushBytes>::try_from(&key[..]).unwrap())
        .into_script();
    let cases = [
        ("p2pkh", tx_with(legacy_sig.clone(), vec![], ScriptBuf::new_p2pkh(&PubkeyHash::from_byte_array([1; 20])))),
        (
            "p2wpkh",
            tx_with(
                ScriptBuf::new(),
                vec![sig.clone(), key.clone()],
                ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([2; 20])),
            ),
        ),
        (
            "p2tr",
            tx_with(
                ScriptBuf::new(),
                vec![vec![0x5a; 64]],
                ScriptBuf::new_p2tr_tweaked(xonly.dangerous_assume_tweaked()),
            ),
        ),
    ];
    for (kind, tx) in cases {
        let hex = frame_hex(&btcpeer::wire::Message::Tx(tx.clone()), &net);
        let (code, events, text) = btcpeer(&["decode", "--network", "mainnet", "--json", &hex], "");
        assert_eq!(code, 0, "{kind}: {text}");
        let f = &events[0]["fields"];
        assert_eq!(f["txid"], tx.compute_txid().to_string(), "{kind}");
        assert_eq!(f["wtxid"], tx.compute_wtxid().to_string(), "{kind}");
        assert_eq!(f["version"], 2);
        assert_eq!(f["locktime"], 840_000);
        assert_eq!(f["size"], tx.total_size());
        assert_eq!(f["vsize"], tx.vsize());
        assert_eq!(f["weight"], tx.weight().to_wu());
        assert_eq!(f["segwit"], kind != "p2pkh");
        let input = &f["inputs"][0];
        assert_eq!(input["prevout"], format!("{}:3", tx.input[0].previous_output.txid), "{kind}");
        assert_eq!(input["vout"], 3);
        assert_eq!(input["sequence"], 0xffff_fffd_u32);
        let script_sig: String = tx.input[0].script_sig.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(input["script_sig"], script_sig, "{kind}");
        assert_eq!(input["script_sig_asm"], tx.input[0].script_sig.to_asm_string(), "{kind}");
        let witness: Vec<String> =
            tx.input[0].witness.iter().map(|w| w.iter().map(|b| format!("{b:02x}")).collect()).collect();
        assert_eq!(input["witness"], serde_json::json!(witness), "{kind}");
        let output = &f["outputs"][0];
        assert_eq!(output["value_sat"], 5_000);
        assert_eq!(output["value_btc"], "0.00005");
        assert_eq!(output["type"], kind);
        let spk = &tx.output[0].script_pubkey;
        assert_eq!(output["script_pubkey"], spk.as_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>());
        assert_eq!(output["script_pubkey_asm"], spk.to_asm_string());
        let address = Address::from_script(spk, BitcoinNetwork::Bitcoin).expect("standard").to_string();
        assert_eq!(output["address"], address, "{kind}: the address on the frame's network");
        let prefix = match kind {
            "p2pkh" => "1",
            "p2wpkh" => "bc1q",
            _ => "bc1p",
        };
        assert!(address.starts_with(prefix), "{kind}: {address}");
        // Readable text has every field too, nested under the input and the output.
        let (code, _, text) = btcpeer(&["decode", "--network", "mainnet", &hex], "");
        assert_eq!(code, 0);
        for needle in ["inputs: 1 entries", "prevout: ", "script_sig_asm: ", "outputs: 1 entries", "address: "] {
            assert!(text.contains(needle), "{kind}: {needle:?} missing from\n{text}");
        }
    }
    // No address where the network has none (a custom magic).
    let (_, tx) =
        ("p2wpkh", tx_with(ScriptBuf::new(), vec![], ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([2; 20]))));
    let custom = btcpeer::network::Network::custom("custom", btcpeer::network::Magic::from_bytes([1, 2, 3, 4]), 1);
    let hex = frame_hex(&btcpeer::wire::Message::Tx(tx), &custom);
    let (code, events, _) = btcpeer(&["decode", "--magic", "01020304", "--json", &hex], "");
    assert_eq!(code, 0);
    assert_eq!(events[0]["fields"]["outputs"][0]["address"], Value::Null);
}

#[test]
fn r_c4_decode_checks_a_blocks_merkle_root_and_summarises_on_request() {
    use btcpeer::bitcoin::Network as BitcoinNetwork;
    let chain = btcpeer::testing::SyntheticChain::new(BitcoinNetwork::Regtest, 3);
    let block = chain.block(2).clone();
    let hex = frame_hex(&btcpeer::wire::Message::Block(block.clone()), &btcpeer::network::Network::REGTEST);
    let (code, events, _) = btcpeer(&["decode", "--network", "regtest", "--json", &hex], "");
    assert_eq!(code, 0);
    let f = &events[0]["fields"];
    assert_eq!(f["hash"], block.block_hash().to_string());
    assert_eq!(f["merkle_root_ok"], true);
    assert_eq!(f["tx_count"], 1);
    assert!(f["transactions"][0]["inputs"].is_array(), "every transaction in full: {f}");
    let (_, events, _) = btcpeer(&["decode", "--network", "regtest", "--json", "--summary", &hex], "");
    let t = &events[0]["fields"]["transactions"][0];
    assert_eq!(t["txid"], block.txdata[0].compute_txid().to_string());
    assert!(t["inputs"].is_null() && t["input_count"] == 1, "summary: counts only: {t}");
}
