//! A compact-filter light client watching addresses: `btcpeer::light` in a few lines.
//!
//! ```sh
//! cargo run -p btcpeer --example light -- --network signet --connect HOST:38333 --watch tb1q… [--data-dir DIR]
//! cargo run -p btcpeer --example light        # a regtest chain served in this process, one payment and its spend
//! ```
//!
//! Prints every event until synced (payments, spends, dropped peers), then exits.

use std::sync::Arc;

use btcpeer::bitcoin::{Address, Amount, ScriptBuf};
use btcpeer::light::{LightClient, LightEvent};
use btcpeer::network::Network;
use btcpeer::testing::{ChainBuilder, ChainServer, serve};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut network, mut peers, mut watch, mut dir) = (Network::REGTEST, Vec::new(), Vec::new(), None);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--network" => network = value.parse()?,
            "--connect" => peers.push(value),
            "--watch" => watch.push(value),
            "--data-dir" => dir = Some(value),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let chain = network.bitcoin_network().ok_or("a network with a known chain")?;
    let mut scripts: Vec<ScriptBuf> = Vec::new();
    for w in &watch {
        let script = match w.parse::<Address<_>>() {
            Ok(a) => a.require_network(chain)?.script_pubkey(),
            Err(_) => ScriptBuf::from_hex(w)?,
        };
        scripts.push(script);
    }
    if peers.is_empty() {
        // No peer given: serve a small regtest chain here, paying a script and spending it.
        let script = ScriptBuf::from_hex("00140101010101010101010101010101010101010101")?;
        let mut b = ChainBuilder::new(btcpeer::bitcoin::Network::Regtest);
        b.mine(100);
        let paid = b.pay(&script, Amount::from_sat(50_000));
        b.mine(10);
        b.spend(paid, &ScriptBuf::new());
        let (addr, _task) = serve("127.0.0.1:0", Network::REGTEST, ChainServer::new(Arc::new(b.build()))).await?;
        println!("serving a regtest chain on {addr}");
        (network, peers, scripts) = (Network::REGTEST, vec![addr.to_string()], vec![script]);
    }

    let mut builder = LightClient::builder(network).peers(peers).watch(scripts);
    if let Some(dir) = dir {
        builder = builder.data_dir(dir);
    }
    let mut client = builder.build()?.start()?;
    while let Some(event) = client.next_event().await {
        match event {
            LightEvent::Tx(tx) => println!("{} at height {} ({}): {:?}", tx.txid, tx.height, tx.block, tx.kind),
            LightEvent::Synced { height, tip } => {
                println!("synced at height {height} ({tip})");
                return Ok(());
            }
            LightEvent::Stopped(e) => return Err(e.into()),
            LightEvent::Progress { .. } => {}
            other => println!("{other:?}"),
        }
    }
    Err("the client stopped before it synced".into())
}
