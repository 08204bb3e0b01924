from __future__ import annotations

import iomt_ids


def test_all_is_sorted_and_every_name_exists() -> None:
    assert iomt_ids.__all__ == sorted(iomt_ids.__all__)
    for name in iomt_ids.__all__:
        assert hasattr(iomt_ids, name), name
    public = {n for n in dir(iomt_ids) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(iomt_ids.__all__)
