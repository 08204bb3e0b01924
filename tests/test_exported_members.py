from __future__ import annotations

import iomt_ids


def test_all_is_sorted_and_every_name_exists() -> None:
    assert iomt_ids.__all__ == sorted(iomt_ids.__all__)
    for name in iomt_ids.__all__:
        assert hasattr(iomt_ids, name), name
    public = {n for n in dir(iomt_ids) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(iomt_ids.__all__)


def test_every_package_declares_its_public_surface() -> None:
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(iomt_ids.__path__):
        if not info.ispkg or info.name in {"cli"}:  # cli: commands register on the app, no API
            continue
        pkg = importlib.import_module(f"iomt_ids.{info.name}")
        names = getattr(pkg, "__all__", None)
        assert names, f"iomt_ids.{info.name} has no __all__"
        for name in names:
            assert getattr(pkg, name) is not None, f"iomt_ids.{info.name}.{name}"


def test_the_documented_entry_points_are_public() -> None:
    for name in ("TrainConfig", "DetectConfig", "PcapSource", "History", "predict_csv", "train_run"):
        assert name in iomt_ids.__all__ and getattr(iomt_ids, name) is not None
