"""Every error leaves the package in its right class, with a message that names the culprit.

A usage error (a bad argument, an object used before ``fit``) is a ``ConfigError`` that
states the bound and the value; bad input data is a ``DataError``; an unreadable capture
a ``CaptureError``. No bare ``ValueError``/``TypeError``/``RuntimeError`` is raised.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from iomt_ids.exceptions import (
    BadValueError,
    CaptureError,
    ConfigError,
    DataError,
    IomtIdsError,
    NotFittedError,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "iomt_ids"


def test_not_fitted_is_a_usage_error_not_bad_data() -> None:
    assert issubclass(NotFittedError, ConfigError) and issubclass(NotFittedError, ValueError)
    assert not issubclass(NotFittedError, DataError)


def test_an_unfitted_preprocessor_says_what_to_call_first() -> None:
    from iomt_ids.data.preprocess import Preprocessor

    pre = Preprocessor(input_columns=("a", "b"))
    with pytest.raises(NotFittedError, match=r"Preprocessor\.transform: .*not fitted; call fit\(\)") as err:
        pre.transform(np.zeros((3, 2)))
    assert not isinstance(err.value, BadValueError)


@pytest.mark.parametrize("batch_size", [0, -5])
def test_a_bad_capture_batch_size_is_a_config_error_with_bound_and_value(
    tmp_path: Path, batch_size: int
) -> None:
    from iomt_ids.features import read_capture

    path = tmp_path / "none.pcap"  # the argument is checked before the file is opened
    with pytest.raises(ConfigError, match=rf"batch_size must be >= 1; got {batch_size} instead") as err:
        read_capture(path, batch_size=batch_size)
    assert not isinstance(err.value, CaptureError)


def test_row_hashes_of_another_table_are_a_config_error() -> None:
    from iomt_ids.data.dedup import first_occurrences, row_hashes
    from iomt_ids.data.loader import LoadedData

    def data(n: int) -> LoadedData:
        labels = np.array(["A"] * n, dtype=object)
        return LoadedData(table=pl.DataFrame({"a": range(n)}), labels=labels, captures=labels, release="v2")

    with pytest.raises(
        ConfigError, match=r"hashes: row hashes cover 3 rows; the data has 5 \(expected row_hashes"
    ):
        first_occurrences(data(5), row_hashes(data(3).table))


def test_reference_reader_raises_capture_errors(tmp_path: Path) -> None:
    from iomt_ids.features.reference import reference_v2_rows
    from tests.features.pcapgen import tcp_frame, write_pcap

    ppp = write_pcap(tmp_path / "ppp.pcap", [(1, 0, tcp_frame())], linktype=9)
    with pytest.raises(
        CaptureError, match=r"ppp\.pcap: unsupported link type 9; expected one of 1 \(Ethernet\)"
    ):
        reference_v2_rows(ppp)
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all, just text" * 4)
    with pytest.raises(CaptureError, match=r"junk\.pcap: dpkt cannot read it as a pcap or pcapng capture"):
        reference_v2_rows(junk)


def test_early_stopping_on_a_missing_key_names_it_and_the_keys_there_are() -> None:
    from iomt_ids.training import EarlyStopping

    with pytest.raises(
        ConfigError, match=r"EarlyStopping\.monitor must be a key of .*\['epoch', 'loss'\]; got 'val_f1'"
    ):
        EarlyStopping(monitor="val_f1").step({"epoch": 1, "loss": 0.5})


#: Bare raises that remain, in modules outside this change; each is either the protocol of a
#: hook (json ``default`` must raise TypeError), caught and re-raised as an IomtIdsError in the
#: same function, or still to fix (listed in the integrity pass). The set may only shrink.
KNOWN_BARE_RAISES = {
    ("models/base.py", "TypeError"),  # json default hook (json requires TypeError)
    ("adaptation/novelty.py", "ValueError"),  # caught: DataError
}


def _bare_raises() -> set[tuple[str, str]]:
    found = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(exc, ast.Name) and exc.id in {"ValueError", "TypeError", "RuntimeError"}:
                    found.add((path.relative_to(SRC).as_posix(), exc.id))
    return found


def test_no_new_bare_value_type_or_runtime_errors() -> None:
    new = _bare_raises() - KNOWN_BARE_RAISES
    assert not new, f"raise an IomtIdsError subclass instead: {sorted(new)}"
    fixed_here = {"data/dedup.py", "data/preprocess.py", "features/reference.py", "features/packets.py"}
    assert not {f for f, _ in _bare_raises()} & fixed_here


def test_every_error_class_is_an_iomt_ids_error() -> None:
    import iomt_ids.exceptions as exc_mod

    for name in exc_mod.__all__:
        assert issubclass(getattr(exc_mod, name), IomtIdsError), name
