//! Two peers over 127.0.0.1 for the benches: one TCP connection, both handshakes done.

use btcpeer::peer::{Handler, Peer, PeerConfig};
use tokio::net::{TcpListener, TcpStream};

/// An outbound and an inbound peer with these configurations and handlers, connected and shaken
/// hands through `listener`.
pub async fn pair(
    listener: &TcpListener,
    (out_cfg, out): (PeerConfig, impl Handler),
    (in_cfg, inb): (PeerConfig, impl Handler),
) -> (Peer, Peer) {
    let addr = listener.local_addr().expect("bound");
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (client, (server, from)) = (client.expect("connect"), server.expect("accept"));
    client.set_nodelay(true).expect("nodelay");
    server.set_nodelay(true).expect("nodelay");
    let o = Peer::outbound(out_cfg, addr, out);
    let i = Peer::inbound(in_cfg, from, inb);
    o.associate(client).expect("fresh");
    i.associate(server).expect("fresh");
    o.handshake().await.expect("handshake");
    i.handshake().await.expect("handshake");
    (o, i)
}
