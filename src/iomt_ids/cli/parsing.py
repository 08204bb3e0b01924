"""Small option parsers and cheap argument checks shared by commands.

Everything here is light (standard library only), so that a command can refuse a
bad argument before it imports torch, polars or matplotlib.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from pathlib import Path

from iomt_ids.exceptions import BundleError, ConfigError, DatasetNotFoundError

__all__ = [
    "check_choice",
    "check_data_folder",
    "check_device",
    "check_exists",
    "check_file_output",
    "check_folder_output",
    "check_input_file",
    "check_run_dir",
    "missing_extra",
    "parse_list",
    "use_threads",
    "warn_if_open",
]

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def parse_list(value: str, option: str, allowed: Collection[str]) -> list[str]:
    """Split a comma-separated option and check each item.

    >>> parse_list("2, 6", "--tasks", {"2", "6", "19"})
    ['2', '6']
    """
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if not items or bad:
        raise ConfigError(f"{option}: expected a comma-separated list of {sorted(allowed)}; got {value!r}.")
    return items


def check_choice(value: str, name: str, allowed: Collection[str]) -> str:
    """``value`` when it is one of ``allowed``, else a ConfigError naming ``name``."""
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {list(allowed)}; got {value!r} instead.")
    return value


def check_device(value: str, option: str = "--device") -> str:
    """auto, cpu, mps, cuda or cuda:N."""
    if not _DEVICE.fullmatch(value):
        raise ConfigError(f"{option}: expected auto, cpu, cuda, cuda:N or mps; got {value!r} instead.")
    return value


def check_data_folder(path: Path) -> Path:
    """A dataset folder given to --data: it must exist and be a folder."""
    if not path.exists():
        raise DatasetNotFoundError(f"{path}: data folder does not exist.")
    if not path.is_dir():
        raise DatasetNotFoundError(f"{path}: expected a folder, got a file.")
    return path


def check_exists(path: Path, option: str) -> Path:
    """A file or folder that must exist."""
    if not path.exists():
        raise DatasetNotFoundError(f"{option} {path}: does not exist.")
    return path


def check_run_dir(path: Path, option: str = "--model") -> Path:
    """A RUN_DIR written by ``iomt-ids train``: an existing folder holding bundle.json."""
    hint = "expected a RUN_DIR folder written by 'iomt-ids train'"
    if not path.exists():
        raise BundleError(f"{option} {path}: model bundle folder does not exist ({hint}).")
    if not path.is_dir():
        raise BundleError(f"{option} {path}: is a file; {hint}.")
    if not (path / "bundle.json").is_file():
        raise BundleError(f"{path}: no bundle.json here; is this a RUN_DIR written by 'iomt-ids train'?")
    return path


def check_input_file(path: Path, option: str) -> Path:
    """An existing, readable file (not a folder)."""
    if not path.exists():
        raise DatasetNotFoundError(f"{option} {path}: file does not exist.")
    if path.is_dir():
        raise DatasetNotFoundError(f"{option} {path}: is a folder; expected a file.")
    if not os.access(path, os.R_OK):
        raise DatasetNotFoundError(f"{option} {path}: file is not readable.")
    return path


def check_file_output(path: Path, option: str) -> Path:
    """A file to write: its folder must exist and be writable (it is not created), and it is no folder."""
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; expected a file name.")
    parent = path.parent
    if not parent.exists():
        raise ConfigError(f"{option} {path}: folder {parent} does not exist; create it first.")
    if not parent.is_dir():
        raise ConfigError(f"{option} {path}: {parent} is a file, not a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: folder {parent} is not writable.")
    return path


def check_folder_output(path: Path, option: str) -> Path:
    """A folder to write into (created with its parents when missing): no file in the way, and writable."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: is a file; expected a folder.")
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{option} {path}: {existing} is a file, so the folder cannot be created.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: {existing} is not writable.")
    return path


def use_threads(threads: int, *, cap: int | None = None) -> None:
    """Apply the thread policy (``--threads``; 0 = automatic) before a model runs; logs the choice.

    Imports torch: call it after the cheap argument checks.
    """
    import logging

    from iomt_ids.runtime import apply_thread_policy

    policy = apply_thread_policy(threads or None, cap=cap)
    logging.getLogger("iomt_ids.cli").info(policy.describe())


#: Hosts that only this machine can reach.
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def missing_extra(exc: ImportError, what: str, extra: str = "serve") -> SystemExit:
    """Print that ``what`` needs the optional ``extra`` (naming the missing module); the exit to raise.

    Usage: ``except ImportError as exc: raise missing_extra(exc, "the dashboard") from None``.
    """
    import typer

    typer.secho(f"error: {what} needs the '{extra}' extra ({exc.name} is missing).", err=True, fg="red")
    typer.echo(f"Install it with: pip install 'iomt-ids[{extra}]'", err=True)
    return typer.Exit(2)


def warn_if_open(host: str, api_key: str | None, exposes: str) -> None:
    """Warn when a server listens beyond loopback without an API key."""
    if host not in LOOPBACK and api_key is None:
        import logging

        logging.getLogger("iomt_ids.cli").warning(
            "listening on %s without an API key: anyone who can reach the port %s.", host, exposes
        )
