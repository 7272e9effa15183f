//! `btcpeer decode` (R-C4): v1 frames as hex in, each message's fields out, as `DecodeEvent`s.

use std::fmt;
use std::io::{BufRead, Write};

use btcpeer::bitcoin::hex::{DisplayHex, FromHex};
use btcpeer::network::{Magic, Network};
use btcpeer::wire::frame::{self, FrameHeader, HEADER_LEN};
use btcpeer::wire::{DecodeError, FrameError, Message};
use bytes::{Bytes, BytesMut};
use serde::Serialize;
use serde_json::Value;

use crate::events::json_line;
use crate::fields::{Detail, message_fields};
use crate::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE};

/// The events of `btcpeer decode`, one per frame (see `EVENTS.md`).
#[derive(Serialize, Debug)]
#[serde(tag = "event", rename_all = "snake_case")]
enum DecodeEvent {
    /// A frame decoded.
    Message {
        index: usize,
        command: String,
        payload_size: usize,
        checksum_ok: bool,
        /// Every field of the message, nested (see `fields`).
        fields: Value,
        /// With `--reencode`: the frame encoded again from the decoded message.
        #[serde(skip_serializing_if = "Option::is_none")]
        reencoded_hex: Option<String>,
    },
    /// A frame or hex string that did not decode.
    Error {
        index: usize,
        kind: String,
        reason: String,
        /// A bad checksum's or an undecodable payload's command.
        #[serde(skip_serializing_if = "Option::is_none")]
        command: Option<String>,
        /// `false` for a bad checksum.
        #[serde(skip_serializing_if = "Option::is_none")]
        checksum_ok: Option<bool>,
        /// The payload's field that did not decode.
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    },
}

impl DecodeEvent {
    /// The `error` event for `e`, frame number `index`.
    fn error(index: usize, e: &DecodeError) -> DecodeEvent {
        let (command, checksum_ok, field) = match e {
            DecodeError::Frame(FrameError::BadChecksum { command, .. }) => {
                (Some(command.as_str().to_string()), Some(false), None)
            }
            DecodeError::Payload(pe) => (Some(pe.command.as_str().to_string()), None, Some(pe.field.to_string())),
            DecodeError::Frame(_) => (None, None, None),
        };
        DecodeEvent::Error { index, kind: error_kind(e), reason: e.to_string(), command, checksum_ok, field }
    }
}

/// A JSON value as text: strings bare, `null` as `-`.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

impl fmt::Display for DecodeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeEvent::Error { index, kind, reason, .. } => write!(f, "#{index} error ({kind}): {reason}"),
            DecodeEvent::Message { index, command, payload_size, checksum_ok, fields, reencoded_hex } => {
                let checksum = if *checksum_ok { "ok" } else { "BAD" };
                let mut s = format!("#{index} {command} ({payload_size} payload bytes, checksum {checksum})");
                if let Some(obj) = fields.as_object() {
                    render_object(obj, 1, &mut s);
                }
                if let Some(hex) = reencoded_hex {
                    s.push_str(&format!("\n  reencoded_hex: {hex}"));
                }
                f.write_str(&s)
            }
        }
    }
}

#[derive(clap::Args)]
pub struct DecodeArgs {
    /// Frames as hex; `-` (or nothing) reads one hex string per line from stdin. A string may hold
    /// several frames back to back.
    hex: Vec<String>,
    /// Network whose magic the frames carry: mainnet, testnet3, testnet4, signet, regtest, simnet.
    #[arg(long, default_value = "mainnet")]
    network: String,
    /// Custom network magic as 8 hex digits (overrides --network), e.g. e3e1f3e8.
    #[arg(long)]
    magic: Option<String>,
    /// Largest payload accepted, in bytes (default 4,000,000).
    #[arg(long)]
    max_payload: Option<u32>,
    /// Also print `reencoded_hex`: the frame encoded again from the decoded message.
    #[arg(long)]
    reencode: bool,
    /// One JSON object per line instead of readable text.
    #[arg(long)]
    json: bool,
    /// Blocks and transaction lists as counts and ids only (big blocks print every input and output
    /// otherwise).
    #[arg(long)]
    summary: bool,
}

fn network_of(args: &DecodeArgs) -> Result<Network, String> {
    let mut net = match &args.magic {
        Some(hex) => {
            let bytes = <[u8; 4]>::from_hex(hex).map_err(|e| format!("--magic {hex:?}: {e}"))?;
            Network::custom("custom", Magic::from_bytes(bytes), 0)
        }
        None => args.network.parse::<Network>().map_err(|e| e.to_string())?,
    };
    if let Some(max) = args.max_payload {
        net = net.with_max_payload(max);
    }
    Ok(net)
}

/// The error's variant name, for scripts.
fn error_kind(e: &DecodeError) -> String {
    match e {
        DecodeError::Frame(f) => match f {
            FrameError::PayloadTooLarge { .. } => "payload_too_large",
            FrameError::WrongMagic { .. } => "wrong_magic",
            FrameError::InvalidCommand { .. } => "invalid_command",
            FrameError::CommandPayloadTooLarge { .. } => "command_payload_too_large",
            FrameError::BadChecksum { .. } => "bad_checksum",
            FrameError::Truncated { .. } => "truncated",
            _ => "frame",
        }
        .to_string(),
        DecodeError::Payload(p) => format!("payload.{}", p.field),
    }
}

struct Printer<W: Write> {
    out: W,
    json: bool,
}

impl<W: Write> Printer<W> {
    fn emit(&mut self, event: DecodeEvent) {
        let _ = if self.json { writeln!(self.out, "{}", json_line(&event)) } else { writeln!(self.out, "{event}") };
    }
}

/// Fields as indented lines: scalars and lists of scalars on the key's line, objects and lists of
/// objects (inputs, outputs, transactions …) nested below it.
fn render_object(obj: &serde_json::Map<String, Value>, depth: usize, s: &mut String) {
    let pad = "  ".repeat(depth);
    for (k, v) in obj {
        match v {
            Value::Object(inner) => {
                s.push_str(&format!("\n{pad}{k}:"));
                render_object(inner, depth + 1, s);
            }
            Value::Array(items) if items.iter().any(Value::is_object) => {
                s.push_str(&format!("\n{pad}{k}: {} entries", items.len()));
                for (i, item) in items.iter().enumerate() {
                    s.push_str(&format!("\n{pad}  [{i}]"));
                    match item.as_object() {
                        Some(inner) => render_object(inner, depth + 2, s),
                        None => s.push_str(&format!(" {}", text(item))),
                    }
                }
            }
            Value::Array(items) => {
                let list: Vec<String> = items.iter().map(text).collect();
                s.push_str(&format!("\n{pad}{k}: [{}]", list.join(", ")));
            }
            other => s.push_str(&format!("\n{pad}{k}: {}", text(other))),
        }
    }
}

/// Decodes every frame in one hex string; returns whether all decoded.
fn decode_input<W: Write>(text: &str, index: &mut usize, net: &Network, args: &DecodeArgs, p: &mut Printer<W>) -> bool {
    let cleaned: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = match Vec::<u8>::from_hex(&cleaned) {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            p.emit(DecodeEvent::Error {
                index: *index,
                kind: "invalid_hex".to_string(),
                reason: e.to_string(),
                command: None,
                checksum_ok: None,
                field: None,
            });
            *index += 1;
            return false;
        }
    };
    let mut rest = bytes;
    let mut all_ok = true;
    loop {
        let i = *index;
        *index += 1;
        match decode_one(&rest, i, net, args) {
            Ok((event, used)) => {
                p.emit(event);
                rest = rest.slice(used..);
            }
            Err(e) => {
                p.emit(DecodeEvent::error(i, &e));
                // A frame whose header was readable can be skipped; anything else ends this input.
                match skip_len(&rest, net) {
                    Some(used)
                        if matches!(&e, DecodeError::Payload(_))
                            || matches!(&e, DecodeError::Frame(f) if f.is_droppable()) =>
                    {
                        rest = rest.slice(used..);
                        all_ok = false;
                    }
                    _ => return false,
                }
            }
        }
        if rest.is_empty() {
            return all_ok;
        }
    }
}

/// The length of a complete frame whose header passed the magic and length checks (its command
/// bytes may be invalid: such a frame is skipped, as a node drops it).
fn skip_len(input: &Bytes, net: &Network) -> Option<usize> {
    let raw = <&[u8; HEADER_LEN]>::try_from(input.get(..HEADER_LEN)?).ok()?;
    let length = match FrameHeader::parse(raw, net) {
        Ok(header) => header.length,
        Err(e) if e.is_droppable() => FrameHeader::announced_length(raw),
        Err(_) => return None,
    };
    let end = HEADER_LEN + length as usize;
    (input.len() >= end).then_some(end)
}

/// Decodes the frame at the start of `input`, frame number `index`; returns its event and its length.
fn decode_one(
    input: &Bytes,
    index: usize,
    net: &Network,
    args: &DecodeArgs,
) -> Result<(DecodeEvent, usize), DecodeError> {
    let (raw, used) = frame::decode_frame(input, net)?;
    let msg = raw.decode()?;
    let event = DecodeEvent::Message {
        index,
        command: raw.command.as_str().to_string(),
        payload_size: raw.payload.len(),
        checksum_ok: true,
        fields: message_fields(&msg, Detail { network: net.bitcoin_network(), summary: args.summary }),
        reencoded_hex: args.reencode.then(|| reencode(&msg, net)),
    };
    Ok((event, used))
}

fn reencode(msg: &Message, net: &Network) -> String {
    let mut buf = BytesMut::new();
    match frame::encode_frame(msg, net, &mut buf) {
        Ok(_) => buf.to_lower_hex_string(),
        Err(e) => format!("error: {e}"),
    }
}

pub fn run(args: DecodeArgs) -> u8 {
    let net = match network_of(&args) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("btcpeer decode: {e}");
            return EXIT_USAGE;
        }
    };
    let mut printer = Printer { out: std::io::stdout().lock(), json: args.json };
    let mut index = 0;
    let mut ok = true;
    let from_stdin = args.hex.is_empty() || args.hex.iter().any(|h| h == "-");
    for h in args.hex.iter().filter(|h| *h != "-") {
        ok &= decode_input(h, &mut index, &net, &args, &mut printer);
    }
    if from_stdin {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else {
                eprintln!("btcpeer decode: could not read stdin");
                return EXIT_FAILURE;
            };
            if line.trim().is_empty() {
                continue;
            }
            ok &= decode_input(&line, &mut index, &net, &args, &mut printer);
        }
    }
    if ok { EXIT_OK } else { EXIT_FAILURE }
}
