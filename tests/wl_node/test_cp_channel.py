"""Certificate rotation on the node → CP channel: new channel at once, old one drained then closed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from cryptography import x509

from tests.support.pki import PkiFixture
from tests.wl_node.conftest import WL, eventually, node_settings
from tests.wl_node.fake_cp import FakeCp, make_view
from wl_node.app import build_node
from xwl_runtime.identity import Identity
from xwl_runtime.tls import KeyPair, TlsMaterial


def _serial(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


async def test_rotation_reopens_the_stream_with_the_new_certificate_and_drains_the_old_channel(
    tmp_path: Path, pki: PkiFixture, fake_cp: FakeCp
) -> None:
    fake_cp.service.view = make_view(WL, 1)
    app = await build_node(node_settings(tmp_path, pki, fake_cp.target))
    try:
        await eventually(lambda: app.state.stream_connected)
        first_serial = _serial(fake_cp.service.seen.watch_peers[0])
        old_channel = app.cp.channel

        fake_cp.service.pull_delay_s = 0.5
        in_flight = asyncio.create_task(app.agent.pull_once())  # a call leasing the old channel
        await eventually(lambda: len(fake_cp.service.seen.pulls) == 1)

        issued = pki.dir.load_ca().issue(Identity.wl(WL))
        await app.on_rotate(TlsMaterial(pki.dir.ca_cert.read_bytes(), KeyPair(issued.cert_pem, issued.key_pem)))

        await eventually(lambda: len(fake_cp.service.seen.watches) == 2)
        assert _serial(fake_cp.service.seen.watch_peers[1]) == issued.certificate.serial_number != first_serial
        assert fake_cp.service.seen.watches[1].known_version == 1
        assert app.cp.channel is not old_channel
        assert old_channel.get_state() != grpc.ChannelConnectivity.SHUTDOWN  # still serving the pull

        assert await in_flight is True  # the in-flight call finished on the old channel
        await eventually(lambda: old_channel.get_state() == grpc.ChannelConnectivity.SHUTDOWN)
        await eventually(lambda: app.state.stream_connected)
    finally:
        await app.stop(0)
