"""MQTT packet builders and DNS messages (pure)."""

from __future__ import annotations

import dpkt
import pytest

from iomt_ids.exceptions import ConfigError
from iomt_ids.lab.dnsmsg import answer, build_query
from iomt_ids.lab.mqtt_tools import (
    MALFORMED,
    connect_flood,
    encode_remaining_length,
    mqtt_connect,
    mqtt_publish,
)


@pytest.mark.parametrize(
    "n,hexed", [(0, "00"), (127, "7f"), (128, "8001"), (16383, "ff7f"), (2097152, "80808001")]
)
def test_remaining_length_matches_the_mqtt_spec(n: int, hexed: str) -> None:
    assert encode_remaining_length(n).hex() == hexed


def test_connect_packet_layout() -> None:
    pkt = mqtt_connect("dev1", keepalive=60)
    assert pkt[0] == 0x10 and pkt[1] == len(pkt) - 2
    assert pkt[2:8] == b"\x00\x04MQTT" and pkt[8] == 4 and pkt[9] == 0x02
    assert pkt[-6:] == b"\x00\x04dev1"


def test_publish_qos_and_length() -> None:
    pkt = mqtt_publish("a/b", b"xyz", qos=1, packet_id=7)
    assert pkt[0] == 0x32 and pkt[1] == 2 + 3 + 2 + 3
    assert mqtt_publish("a/b", b"", qos=3)[0] == 0x36  # the malformed QoS 3


def test_malformed_variants_are_really_malformed() -> None:
    import random

    rng = random.Random(0)
    assert len(MALFORMED) >= 10
    assert MALFORMED["reserved_type_15"][1](rng)[0] >> 4 == 15
    assert MALFORMED["bad_protocol_name"][1](rng)[4:8] == b"MQTX"


def test_tools_refuse_non_lab_broker_before_connecting() -> None:
    with pytest.raises(ConfigError, match="outside the lab subnet"):
        connect_flood("127.0.0.1", rate=10, count=1, seconds=1)


def test_dns_answer_for_ward_names_only() -> None:
    good = dpkt.dns.DNS(answer(build_query("ehr.ward.lab", qid=7)))
    assert good.id == 7 and good.qr == 1 and len(good.an) == 1 and good.an[0].ip == bytes([10, 77, 0, 1])
    bad = dpkt.dns.DNS(answer(build_query("example.com")))
    assert bad.rcode == dpkt.dns.DNS_RCODE_NXDOMAIN and not bad.an
