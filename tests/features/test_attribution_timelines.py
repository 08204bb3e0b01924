"""Attribution on real lab traffic: in the shipped timelines, each attack's windows name its attacker."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest

from iomt_ids.features import WindowExtractor, read_capture
from iomt_ids.workflows.demo import embedded_timelines


@pytest.mark.parametrize("window", [10, 100])
@pytest.mark.parametrize("timeline", [t.name for t in embedded_timelines()])
def test_each_attack_is_attributed_to_its_attackers(timeline: str, window: int) -> None:
    folder = next(t for t in embedded_timelines() if t.name == timeline)
    attacks = json.loads((folder / "timeline.json").read_text())
    ex = WindowExtractor(window=window)
    metas = [ex.feed(b.ts, b.frames, b.linktype).meta for b in read_capture(folder / "timeline.pcap.gz")]
    meta = pd.concat(metas, ignore_index=True)
    for a in attacks:
        inside = meta[(meta["start_ts"] >= a["start"]) & (meta["end_ts"] <= a["end"])]
        if len(inside) < 3:  # a slow sweep makes few W = 100 windows
            continue
        sources = Counter(inside["src_ip"])
        top, _ = sources.most_common(1)[0]
        assert top in a["attackers"], (a["attack"], sources.most_common(4))
        # most windows of a scan or flood name an attacker, not its target or a bystander
        share = sum(n for ip, n in sources.items() if ip in a["attackers"]) / len(inside)
        assert share >= 0.5, (a["attack"], share, sources.most_common(4))
