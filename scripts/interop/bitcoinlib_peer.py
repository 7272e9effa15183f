#!/usr/bin/python3
"""Interoperability check of btcpeer's v1 peer against python-bitcoinlib, a codec nobody here wrote.

Needs Debian's python3-bitcoinlib (0.11.2), installed for /usr/bin/python3 (not a pyenv python):

    apt-get install -y python3-bitcoinlib

Two modes, both on regtest over 127.0.0.1:

    bitcoinlib_peer.py client HOST:PORT
        Connects to a running `btcpeer listen`, performs the version/verack handshake, sends a ping
        and checks the pong's nonce, checks the version btcpeer sent (protocol 70016, user agent
        /btcpeer:...), then closes.

    bitcoinlib_peer.py server BTCPEER_BINARY
        Listens on 127.0.0.1:0, runs `BTCPEER_BINARY connect 127.0.0.1:PORT --network regtest
        --ping 2 --json`, completes the handshake, answers its pings, and checks that it exits 0
        and reports our version and two pongs.

Frames are read here (24-byte header first) so that commands bitcoinlib does not know (wtxidrelay,
sendaddrv2 ...) can be skipped after their checksum is checked; every message bitcoinlib knows is
decoded by bitcoinlib (which checks magic and checksum again) and must re-encode with bitcoinlib to
exactly the bytes received. Everything sent is encoded by bitcoinlib.

Exits 0 when every check passed, 1 on the first mismatch (with a line saying what differed),
2 on a usage error.
"""

import hashlib
import json
import random
import socket
import struct
import subprocess
import sys

try:
    import bitcoin
    from bitcoin.messages import (MsgSerializable, messagemap, msg_ping, msg_pong, msg_verack,
                                  msg_version)
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"interop: python3-bitcoinlib is not importable by {sys.executable}: {e}", file=sys.stderr)
    sys.exit(2)

PROTOCOL_VERSION = 70016
TIMEOUT = 20.0
USER_AGENT = b"/bitcoinlib-interop:" + bitcoin.__version__.encode("ascii") + b"/"


class Mismatch(Exception):
    """A check failed."""


def check(condition, what):
    if not condition:
        raise Mismatch(what)


def log(mode, text):
    print(f"interop {mode}: {text}", flush=True)


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def read_frame(sock):
    """Reads one frame; returns (command, payload, whole frame bytes)."""
    header = recv_exact(sock, 24)
    magic = header[:4]
    check(magic == bitcoin.params.MESSAGE_START,
          f"frame magic {magic.hex()} is not regtest's {bitcoin.params.MESSAGE_START.hex()}")
    raw_command = header[4:16]
    command = raw_command.rstrip(b"\x00")
    check(b"\x00" not in command and raw_command[len(command):] == b"\x00" * (12 - len(command)),
          f"command field {raw_command!r} is not NUL-padded")
    (length,) = struct.unpack("<I", header[16:20])
    check(length <= 4_000_000, f"{command!r} announces {length} payload bytes")
    payload = recv_exact(sock, length)
    return command, payload, header + payload


def decode(frame, command, payload):
    """Decodes a frame with bitcoinlib when it knows the command; otherwise checks the checksum only.

    Returns the bitcoinlib message, or None for an unknown command.
    """
    if command not in messagemap:
        checksum = hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
        check(frame[20:24] == checksum, f"{command!r}: bad checksum")
        return None
    msg = MsgSerializable.from_bytes(frame)
    check(msg is not None and msg.command == command, f"bitcoinlib could not decode {command!r}")
    again = msg.to_bytes()
    check(again == frame,
          f"{command!r} re-encoded by bitcoinlib differs:\n  received {frame.hex()}\n  bitcoinlib {again.hex()}")
    return msg


def send(sock, msg):
    sock.sendall(msg.to_bytes())


def our_version(peer_ip, peer_port):
    v = msg_version(protover=PROTOCOL_VERSION)
    v.nVersion = PROTOCOL_VERSION
    v.nServices = 1
    v.addrTo.ip = peer_ip
    v.addrTo.port = peer_port
    v.addrTo.nServices = 0
    v.addrFrom.nServices = 1
    v.strSubVer = USER_AGENT
    v.nStartingHeight = 0
    v.fRelay = True
    return v


def check_btcpeer_version(mode, v):
    check(v.nVersion == PROTOCOL_VERSION, f"btcpeer's version is {v.nVersion}, expected {PROTOCOL_VERSION}")
    check(v.strSubVer.startswith(b"/btcpeer:"), f"btcpeer's user agent is {v.strSubVer!r}")
    check(v.strSubVer.endswith(b"/"), f"btcpeer's user agent {v.strSubVer!r} does not end with /")
    check(v.fRelay in (0, 1), f"relay flag {v.fRelay!r}")
    log(mode, f"version {v.nVersion} services {v.nServices} user agent {v.strSubVer.decode()} "
              f"height {v.nStartingHeight} relay {bool(v.fRelay)}")


def handshake(mode, sock, send_version_first, version):
    """Performs the handshake; returns btcpeer's version message and the feature commands it sent."""
    if send_version_first:
        send(sock, version)
    theirs = None
    features = []
    while True:
        command, payload, frame = read_frame(sock)
        msg = decode(frame, command, payload)
        if command == b"version":
            check(theirs is None, "btcpeer sent version twice")
            theirs = msg
            check_btcpeer_version(mode, theirs)
            if not send_version_first:
                send(sock, version)
            send(sock, msg_verack(protover=PROTOCOL_VERSION))
        elif command == b"verack":
            check(theirs is not None, "btcpeer sent verack before version")
            check(payload == b"", f"verack with a payload: {payload.hex()}")
            log(mode, f"handshake complete (btcpeer also sent {', '.join(features) or 'nothing else'})")
            return theirs, features
        elif command in (b"wtxidrelay", b"sendaddrv2"):
            check(theirs is not None, f"{command!r} before version")
            check(payload == b"", f"{command!r} with a payload: {payload.hex()}")
            features.append(command.decode())
        else:
            raise Mismatch(f"unexpected {command!r} during the handshake")


def run_client(target):
    host, _, port = target.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    sock.settimeout(TIMEOUT)
    try:
        ip, port = sock.getpeername()[:2]
        _, features = handshake("client", sock, True, our_version(ip, port))
        # btcpeer sends these at 70016 (BIP339, BIP155), before its verack.
        check(sorted(features) == ["sendaddrv2", "wtxidrelay"],
              f"feature messages {features}, expected wtxidrelay and sendaddrv2")
        nonce = random.getrandbits(64)
        send(sock, msg_ping(protover=PROTOCOL_VERSION, nonce=nonce))
        while True:
            command, payload, frame = read_frame(sock)
            msg = decode(frame, command, payload)
            if command == b"pong":
                check(msg.nonce == nonce, f"pong nonce {msg.nonce:#x}, expected {nonce:#x}")
                log("client", f"pong {nonce:#018x} matches our ping")
                break
            log("client", f"skipping {command.decode()} while waiting for the pong")
    finally:
        sock.close()


def run_server(binary):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(TIMEOUT)
    port = server.getsockname()[1]
    log("server", f"listening on 127.0.0.1:{port}")
    # This server accepts one connection and speaks v1 only: the default, auto, would spend it on a v2
    # attempt.
    cmd = [binary, "connect", f"127.0.0.1:{port}", "--network", "regtest", "--transport", "v1", "--ping", "2",
           "--json", "--timeout", str(int(TIMEOUT))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    pongs_sent = 0
    try:
        sock, addr = server.accept()
        sock.settimeout(TIMEOUT)
        log("server", f"accepted {addr[0]}:{addr[1]}")
        try:
            handshake("server", sock, False, our_version(addr[0], addr[1]))
            # Answer pings until btcpeer hangs up.
            while True:
                try:
                    command, payload, frame = read_frame(sock)
                except EOFError:
                    break
                msg = decode(frame, command, payload)
                if command == b"ping":
                    send(sock, msg_pong(protover=PROTOCOL_VERSION, nonce=msg.nonce))
                    pongs_sent += 1
                    log("server", f"answered ping {msg.nonce:#018x}")
                else:
                    log("server", f"received {command.decode()} ({len(payload)} bytes)")
        finally:
            sock.close()
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        server.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = out.decode(errors="replace")
    err = err.decode(errors="replace")
    check(proc.returncode == 0, f"btcpeer connect exited {proc.returncode}: {err.strip()}\n{out}")
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    handshakes = [e for e in events if e["event"] == "handshake"]
    check(len(handshakes) == 1, f"btcpeer connect printed {len(handshakes)} handshake events")
    hs = handshakes[0]
    check(hs["user_agent"] == USER_AGENT.decode(), f"btcpeer saw user agent {hs['user_agent']!r}")
    check(hs["version"] == PROTOCOL_VERSION and hs["negotiated_version"] == PROTOCOL_VERSION,
          f"btcpeer saw version {hs['version']}, negotiated {hs['negotiated_version']}")
    check(hs["services"] == 1 and hs["service_names"] == ["NETWORK"], f"btcpeer saw services {hs['services']}")
    check(hs["wants_addrv2"] is False and hs["wtxid_relay"] is False,
          "btcpeer thinks bitcoinlib asked for addrv2/wtxidrelay")
    pongs = [e for e in events if e["event"] == "pong"]
    check(len(pongs) == 2 and pongs_sent == 2, f"{len(pongs)} pong events, {pongs_sent} pongs sent; expected 2")
    check(events[-1]["event"] == "disconnect", f"last event is {events[-1]}")
    log("server", f"btcpeer connect exited 0 with a handshake, {len(pongs)} pongs and a disconnect")


def main(argv):
    if len(argv) != 3 or argv[1] not in ("client", "server"):
        print("usage: bitcoinlib_peer.py client HOST:PORT | server BTCPEER_BINARY", file=sys.stderr)
        return 2
    bitcoin.SelectParams("regtest")
    try:
        if argv[1] == "client":
            run_client(argv[2])
        else:
            run_server(argv[2])
    except Mismatch as e:
        print(f"interop {argv[1]}: FAIL: {e}", file=sys.stderr)
        return 1
    except (OSError, EOFError, ValueError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
        print(f"interop {argv[1]}: FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"interop {argv[1]}: ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
