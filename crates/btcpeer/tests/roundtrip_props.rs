//! R-W1 property tests: every message type, with arbitrary field values, encodes and decodes back to
//! an equal value; and decoding arbitrary bytes under any command never panics (R-W8).

use bitcoin::absolute::LockTime;
use bitcoin::bip152::{BlockTransactions, BlockTransactionsRequest, HeaderAndShortIds, PrefilledTransaction, ShortId};
use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::p2p::address::{AddrV2, AddrV2Message};
use bitcoin::p2p::message_blockdata::{GetBlocksMessage, GetHeadersMessage};
use bitcoin::p2p::message_compact_blocks::SendCmpct;
use bitcoin::p2p::message_filter::{CFCheckpt, CFHeaders, CFilter, GetCFCheckpt, GetCFHeaders, GetCFilters};
use bitcoin::p2p::{Address, ServiceFlags};
use bitcoin::{
    Amount, Block, BlockHash, CompactTarget, FilterHash, FilterHeader, MerkleBlock, OutPoint, ScriptBuf, Sequence,
    Transaction, TxIn, TxMerkleNode, TxOut, Txid, Witness, transaction,
};
use btcpeer::network::Network;
use btcpeer::wire::{
    Command, FilterAdd, FilterLoad, Inventory, Message, Reject, RejectCode, SendTxRcncl, VersionMessage, VersionTail,
    blank_address, frame,
};
use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;

fn hash32() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn block_hash() -> impl Strategy<Value = BlockHash> {
    hash32().prop_map(BlockHash::from_byte_array)
}

fn address() -> impl Strategy<Value = Address> {
    (any::<u64>(), any::<[u16; 8]>(), any::<u16>()).prop_map(|(s, address, port)| Address {
        services: ServiceFlags::from(s),
        address,
        port,
    })
}

fn ascii(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[ -~]{{0,{max}}}")).expect("valid regex")
}

fn version_msg() -> impl Strategy<Value = VersionMessage> {
    let tails = prop_oneof![
        Just(VersionTail::Complete),
        Just(VersionTail::NoRelay),
        Just(VersionTail::NoStartHeight),
        Just(VersionTail::NoUserAgent),
        Just(VersionTail::NoSender),
    ];
    (
        (any::<u32>(), any::<u64>(), any::<i64>(), address(), address()),
        (any::<u64>(), "\\PC{0,60}", any::<i32>(), any::<bool>(), tails),
    )
        .prop_map(|((version, services, timestamp, receiver, sender), (nonce, ua, start_height, relay, tail))| {
            let mut m = VersionMessage {
                version,
                services: ServiceFlags::from(services),
                timestamp,
                receiver,
                sender,
                nonce,
                user_agent: ua,
                start_height,
                relay,
                tail,
            };
            // Fields the tail omits come back with Core's defaults.
            let cut = |t: VersionTail| match t {
                VersionTail::Complete => 5,
                VersionTail::NoRelay => 4,
                VersionTail::NoStartHeight => 3,
                VersionTail::NoUserAgent => 2,
                VersionTail::NoSender => 1,
            };
            let present = cut(tail);
            if present < 5 {
                m.relay = true;
            }
            if present < 4 {
                m.start_height = -1;
            }
            if present < 3 {
                m.user_agent.clear();
            }
            if present < 2 {
                m.sender = blank_address();
                m.nonce = 1;
            }
            m
        })
}

fn addrv2() -> impl Strategy<Value = AddrV2> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| AddrV2::Ipv4(b.into())),
        any::<[u8; 16]>().prop_map(|b| AddrV2::Ipv6(b.into())),
        any::<[u8; 10]>().prop_map(AddrV2::TorV2),
        hash32().prop_map(AddrV2::TorV3),
        hash32().prop_map(AddrV2::I2p),
        any::<[u8; 16]>().prop_map(|b| AddrV2::Cjdns(b.into())),
        (7u8.., vec(any::<u8>(), 0..64)).prop_map(|(id, b)| AddrV2::Unknown(id, b)),
        vec(any::<u8>(), 0..64).prop_map(|b| AddrV2::Unknown(0, b)),
    ]
}

fn addrv2_msg() -> impl Strategy<Value = AddrV2Message> {
    (any::<u32>(), any::<u64>(), addrv2(), any::<u16>()).prop_map(|(time, s, addr, port)| AddrV2Message {
        time,
        services: ServiceFlags::from(s),
        addr,
        port,
    })
}

fn inventory() -> impl Strategy<Value = Inventory> {
    let types = prop_oneof![0u32..=5, 0x4000_0001u32..=0x4000_0003, any::<u32>()];
    (types, hash32()).prop_map(|(t, h)| Inventory::from_parts(t, h))
}

fn header() -> impl Strategy<Value = Header> {
    (any::<i32>(), block_hash(), hash32(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
        |(v, prev, merkle, time, bits, nonce)| Header {
            version: Version::from_consensus(v),
            prev_blockhash: prev,
            merkle_root: TxMerkleNode::from_byte_array(merkle),
            time,
            bits: CompactTarget::from_consensus(bits),
            nonce,
        },
    )
}

fn transaction() -> impl Strategy<Value = Transaction> {
    let input = (hash32(), any::<u32>(), vec(any::<u8>(), 0..40), any::<u32>(), vec(vec(any::<u8>(), 0..40), 0..3))
        .prop_map(|(txid, vout, script, seq, witness)| TxIn {
            previous_output: OutPoint { txid: Txid::from_byte_array(txid), vout },
            script_sig: ScriptBuf::from_bytes(script),
            sequence: Sequence(seq),
            witness: Witness::from_slice(&witness),
        });
    let output = (any::<u64>(), vec(any::<u8>(), 0..40))
        .prop_map(|(v, script)| TxOut { value: Amount::from_sat(v), script_pubkey: ScriptBuf::from_bytes(script) });
    // At least one input: a transaction without inputs is ambiguous with the segwit marker.
    (any::<i32>(), vec(input, 1..4), vec(output, 0..4), any::<u32>()).prop_map(|(v, input, output, lt)| Transaction {
        version: transaction::Version(v),
        lock_time: LockTime::from_consensus(lt),
        input,
        output,
    })
}

fn message() -> BoxedStrategy<Message> {
    let simple = prop_oneof![
        Just(Message::Verack),
        Just(Message::SendAddrV2),
        Just(Message::MemPool),
        Just(Message::GetAddr),
        Just(Message::SendHeaders),
        Just(Message::FilterClear),
        Just(Message::WtxidRelay),
        any::<u64>().prop_map(Message::Ping),
        any::<u64>().prop_map(Message::Pong),
        any::<i64>().prop_map(Message::FeeFilter),
        (any::<bool>(), any::<u64>()).prop_map(|(a, v)| Message::SendCmpct(SendCmpct { send_compact: a, version: v })),
        (any::<u32>(), any::<u64>()).prop_map(|(version, salt)| Message::SendTxRcncl(SendTxRcncl { version, salt })),
    ];
    let lists = prop_oneof![
        version_msg().prop_map(Message::Version),
        vec((any::<u32>(), address()), 0..20).prop_map(Message::Addr),
        vec(addrv2_msg(), 0..20).prop_map(Message::AddrV2),
        vec(inventory(), 0..30).prop_map(Message::Inv),
        vec(inventory(), 0..30).prop_map(Message::GetData),
        vec(inventory(), 0..30).prop_map(Message::NotFound),
        (any::<u32>(), vec(block_hash(), 0..=101), block_hash()).prop_map(|(version, locator_hashes, stop_hash)| {
            Message::GetBlocks(GetBlocksMessage { version, locator_hashes, stop_hash })
        }),
        (any::<u32>(), vec(block_hash(), 0..=101), block_hash()).prop_map(|(version, locator_hashes, stop_hash)| {
            Message::GetHeaders(GetHeadersMessage { version, locator_hashes, stop_hash })
        }),
        vec(header(), 0..20).prop_map(Message::Headers),
        (ascii(12), any::<u8>(), ascii(111), proptest::option::of(hash32())).prop_map(
            |(message, code, reason, hash)| {
                Message::Reject(Reject { message, code: RejectCode(code), reason, hash })
            }
        ),
        (vec(any::<u8>(), 0..200), 0u32..=50, any::<u32>(), any::<u8>()).prop_map(
            |(filter, hash_funcs, tweak, flags)| {
                Message::FilterLoad(FilterLoad { filter, hash_funcs, tweak, flags })
            }
        ),
        vec(any::<u8>(), 0..=520).prop_map(|data| Message::FilterAdd(FilterAdd { data })),
    ];
    let chain = prop_oneof![
        (header(), vec(transaction(), 1..4)).prop_map(|(header, txdata)| Message::Block(Block { header, txdata })),
        transaction().prop_map(Message::Tx),
        (header(), any::<u64>(), vec(any::<[u8; 6]>(), 0..8), vec((any::<u16>(), transaction()), 0..3)).prop_map(
            |(header, nonce, ids, pre)| {
                Message::CmpctBlock(HeaderAndShortIds {
                    header,
                    nonce,
                    short_ids: ids.into_iter().map(ShortId::from).collect(),
                    prefilled_txs: pre.into_iter().map(|(idx, tx)| PrefilledTransaction { idx, tx }).collect(),
                })
            }
        ),
        (block_hash(), vec(any::<u32>(), 0..20)).prop_map(|(block_hash, diffs)| {
            let mut next = 0u64;
            let indexes = diffs
                .into_iter()
                .map(|d| {
                    let i = next + u64::from(d);
                    next = i + 1;
                    i
                })
                .collect();
            Message::GetBlockTxn(BlockTransactionsRequest { block_hash, indexes })
        }),
        (block_hash(), vec(transaction(), 0..4))
            .prop_map(|(block_hash, transactions)| Message::BlockTxn(BlockTransactions { block_hash, transactions })),
        (any::<u8>(), any::<u32>(), block_hash()).prop_map(|(filter_type, start_height, stop_hash)| {
            Message::GetCFilters(GetCFilters { filter_type, start_height, stop_hash })
        }),
        (any::<u8>(), any::<u32>(), block_hash()).prop_map(|(filter_type, start_height, stop_hash)| {
            Message::GetCFHeaders(GetCFHeaders { filter_type, start_height, stop_hash })
        }),
        (any::<u8>(), block_hash())
            .prop_map(|(filter_type, stop_hash)| Message::GetCFCheckpt(GetCFCheckpt { filter_type, stop_hash })),
        (any::<u8>(), block_hash(), vec(any::<u8>(), 0..200)).prop_map(|(filter_type, block_hash, filter)| {
            Message::CFilter(CFilter { filter_type, block_hash, filter })
        }),
        (any::<u8>(), block_hash(), hash32(), vec(hash32(), 0..30)).prop_map(|(filter_type, stop_hash, prev, hs)| {
            Message::CFHeaders(CFHeaders {
                filter_type,
                stop_hash,
                previous_filter_header: FilterHeader::from_byte_array(prev),
                filter_hashes: hs.into_iter().map(FilterHash::from_byte_array).collect(),
            })
        }),
        (any::<u8>(), block_hash(), vec(hash32(), 0..30)).prop_map(|(filter_type, stop_hash, hs)| {
            Message::CFCheckpt(CFCheckpt {
                filter_type,
                stop_hash,
                filter_headers: hs.into_iter().map(FilterHeader::from_byte_array).collect(),
            })
        }),
        ("[a-z]{1,12}", vec(any::<u8>(), 0..200))
            .prop_filter("not a known command", |(c, _)| !Command::new(c).is_ok_and(|c| c.is_known()))
            .prop_map(|(c, p)| Message::Unknown { command: Command::new(&c).expect("valid"), payload: Bytes::from(p) }),
    ];
    prop_oneof![simple, lists, chain].boxed()
}

fn merkleblock() -> impl Strategy<Value = MerkleBlock> {
    (header(), vec((hash32(), any::<bool>()), 1..40)).prop_map(|(header, txs)| {
        let txids: Vec<Txid> = txs.iter().map(|(h, _)| Txid::from_byte_array(*h)).collect();
        let matched: Vec<Txid> = txs.iter().filter(|(_, m)| *m).map(|(h, _)| Txid::from_byte_array(*h)).collect();
        MerkleBlock::from_header_txids_with_predicate(&header, &txids, |t| matched.contains(t))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn r_w1_every_message_type_round_trips(msg in message()) {
        let mut buf = BytesMut::new();
        frame::encode_frame(&msg, &Network::REGTEST, &mut buf).expect("encodes");
        let frame_bytes = buf.freeze();
        let (raw, used) = frame::decode_frame(&frame_bytes, &Network::REGTEST).expect("frame decodes");
        prop_assert_eq!(used, frame_bytes.len());
        prop_assert_eq!(raw.command, msg.command());
        let back = raw.decode().expect("payload decodes");
        prop_assert_eq!(&back, &msg);
    }

    #[test]
    fn r_w1_merkleblock_round_trips_byte_for_byte(m in merkleblock()) {
        // PartialMerkleTree pads its flag bits to whole bytes on the wire, so compare encodings.
        let msg = Message::MerkleBlock(m);
        let mut first = BytesMut::new();
        msg.encode_payload(&mut first).expect("encodes");
        let back = Message::decode(Command::MERKLEBLOCK, first.clone().freeze()).expect("decodes");
        let mut second = BytesMut::new();
        back.encode_payload(&mut second).expect("encodes");
        prop_assert_eq!(first, second);
        let Message::MerkleBlock(back) = back else { panic!("not a merkleblock") };
        let Message::MerkleBlock(orig) = msg else { panic!("not a merkleblock") };
        prop_assert_eq!(back.header, orig.header);
        prop_assert_eq!(back.txn.hashes(), orig.txn.hashes());
    }

    #[test]
    fn r_w8_decoding_arbitrary_payloads_never_panics(idx in 0..Command::KNOWN.len(), payload in vec(any::<u8>(), 0..600)) {
        let command = Command::KNOWN[idx];
        let _ = Message::decode(command, Bytes::from(payload));
    }

    #[test]
    fn r_w8_decoding_mutated_valid_payloads_never_panics(
        msg in message(), flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()
    ) {
        let mut buf = BytesMut::new();
        msg.encode_payload(&mut buf).expect("encodes");
        let mut bytes = buf.to_vec();
        if !bytes.is_empty() {
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= value;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        let _ = Message::decode(msg.command(), Bytes::from(bytes));
    }
}
