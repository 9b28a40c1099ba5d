"""The subscriber's buffered socket (`gateway.mqtt_client.BufferedSocket`) and burst reads.

paho asks for a packet piece by piece (command byte, length bytes, body); the buffered socket
answers from one large `recv()`. These tests check that the bytes paho sees are exactly the bytes
sent, whatever the network's chunking and paho's request sizes, that `pending()` reports what is
buffered (so paho's loop does not sleep on it), and that a real subscriber reading in bursts
gets every message of a burst from Mosquitto, also when a burst is cut short.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

import gateway.mqtt_client as mc
from gateway.mqtt_client import BufferedSocket, Inbound, MqttSubscriber


class _Chunks:
    """A non-blocking socket stand-in that returns the stream in the given chunks."""

    def __init__(self, chunks: list[bytes], closes: bool) -> None:
        self.chunks = list(chunks)
        self.closes = closes
        self.recv_calls = 0

    def recv(self, n: int) -> bytes:
        self.recv_calls += 1
        if not self.chunks:
            if self.closes:
                return b""
            raise BlockingIOError
        head = self.chunks[0]
        out, rest = head[:n], head[n:]
        if rest:
            self.chunks[0] = rest
        else:
            self.chunks.pop(0)
        return out

    def fileno(self) -> int:
        return 99


@settings(max_examples=400, deadline=None)
@given(stream=st.binary(min_size=0, max_size=3000), cuts=st.lists(st.integers(1, 700), max_size=20),
       asks=st.lists(st.integers(1, 900), min_size=1, max_size=50))
def test_reads_give_exactly_the_bytes_sent_whatever_the_chunking(stream, cuts, asks):
    chunks, pos = [], 0
    for c in cuts:
        if pos < len(stream):
            chunks.append(stream[pos:pos + c])
            pos += c
    if pos < len(stream):
        chunks.append(stream[pos:])
    raw = _Chunks(chunks, closes=True)
    sock = BufferedSocket(raw)
    got = bytearray()
    i = 0
    while True:
        want = asks[i % len(asks)]
        i += 1
        before = sock.pending()
        piece = sock.recv(want)
        assert len(piece) <= want
        if not piece:
            break  # the peer closed: paho sees b"" as for a real socket
        if before:
            assert len(piece) == min(want, before)  # served from the buffer, no system call needed
        got += piece
    assert bytes(got) == stream
    assert sock.pending() == 0


def test_an_empty_buffer_passes_would_block_through_and_pending_counts_buffered_bytes():
    raw = _Chunks([b"\x30\x05abcde\x30\x01z"], closes=False)
    sock = BufferedSocket(raw)
    assert sock.recv(1) == b"\x30"
    assert sock.pending() == 9 and raw.recv_calls == 1
    assert sock.recv(1) == b"\x05" and sock.recv(5) == b"abcde"
    assert sock.recv(100) == b"\x30\x01z"  # a short read of what is left, as a socket gives
    assert sock.pending() == 0
    with pytest.raises(BlockingIOError):
        sock.recv(1)
    assert raw.recv_calls == 2
    assert sock.fileno() == 99


def test_pending_adds_what_a_tls_socket_still_holds():
    class Tls(_Chunks):
        def pending(self) -> int:
            return 7

    sock = BufferedSocket(Tls([b"abcdef"], closes=False))
    assert sock.pending() == 7
    sock.recv(2)
    assert sock.pending() == 4 + 7


def test_the_subscriber_reads_through_a_buffered_socket(mosquitto):
    sub = MqttSubscriber(mosquitto.url, f"t-{uuid.uuid4().hex[:6]}", lambda it: None, topics=("t/#",))
    sub.start()
    try:
        assert sub.connected.wait(10)
        assert isinstance(sub.client.socket(), BufferedSocket)
    finally:
        sub.stop()


def _publish(url_port: int, n: int, size: int) -> None:
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}", clean_session=True)
    pub.max_inflight_messages_set(0)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", url_port)
    pub.loop_start()
    infos = [pub.publish(f"t/{k % 7}", k.to_bytes(4, "big") + b"x" * size, qos=1) for k in range(n)]
    for i in infos:
        i.wait_for_publish(30)
    pub.disconnect()
    pub.loop_stop()


@pytest.mark.parametrize("burst", [1, 3, mc.READ_BURST])
def test_every_message_of_a_burst_arrives_in_order_also_when_reads_are_cut_short(mosquitto, monkeypatch, burst):
    """With a burst cap of 1, paho's loop must come back at once for packets left in the buffer
    (through `pending()`); a missed wake-up would leave them until the next keepalive."""
    monkeypatch.setattr(mc, "READ_BURST", burst)
    n = 3000
    got: list[Inbound] = []
    done = threading.Event()
    acks: list[Inbound] = []

    def on_message(it: Inbound) -> None:
        got.append(it)
        acks.append(it)
        if len(got) >= n:
            done.set()

    sub = MqttSubscriber(mosquitto.url, f"t-{uuid.uuid4().hex[:6]}", on_message, topics=("t/#",), keepalive=60)
    sub.start()
    try:
        assert sub.connected.wait(10)
        time.sleep(0.3)  # the subscription is in place
        t0 = time.monotonic()
        _publish(mosquitto.port, n, 300)
        assert done.wait(20), f"got {len(got)} of {n}"
        # a stall waits for paho's 1 s select timeout at least once per leftover buffer
        assert time.monotonic() - t0 < 15
        assert [int.from_bytes(it.payload[:4], "big") for it in got] == list(range(n))
        assert sub.ack_many(acks) == n
    finally:
        sub.stop()


def test_a_socket_that_closes_mid_packet_is_a_lost_connection_not_a_hang():
    a, b = socket.socketpair()
    a.setblocking(False)
    sock = BufferedSocket(a)
    b.sendall(b"\x30\x10abc")  # a PUBLISH announcing 16 bytes, 3 sent
    b.close()
    deadline = time.monotonic() + 5
    got = b""
    while time.monotonic() < deadline:
        try:
            piece = sock.recv(64)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        if not piece:
            break
        got += piece
    assert got == b"\x30\x10abc"
    assert sock.recv(64) == b""  # end of stream stays end of stream
    a.close()
