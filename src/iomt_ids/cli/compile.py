"""``iomt-ids compile``: compile a tree bundle's branch code on this machine (once; cached and trusted here)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iomt_ids.cli import app
from iomt_ids.cli.options import ThreadsOpt
from iomt_ids.cli.parsing import check_run_dir, use_threads


@app.command("compile")
def compile_(
    model: Annotated[
        Path, typer.Option("--model", "-m", help="RUN_DIR written by 'train' (or a SITE_DIR from 'adapt').")
    ],
    check: Annotated[
        bool,
        typer.Option("--check/--no-check", help="Compare with the native model on 1024 random raw rows."),
    ] = True,
    force: Annotated[
        bool, typer.Option("--force", help="Compile again even where this machine's code is cached.")
    ] = False,
    threads: ThreadsOpt = None,
) -> None:
    """Compile the trees of a LightGBM, random-forest or ensemble bundle to machine code for this CPU.

    'train' and 'adapt' do this when they save a tree model; run it for a bundle copied from
    another machine (its code is never loaded here), then 'predict', 'detect' and 'serve'
    score with the code (about 2x the table kernel on batches).
    """
    from iomt_ids.exceptions import ConfigError

    use_threads(threads)
    directory = model / "classifier" if (model / "site.json").is_file() else model  # a SITE_DIR's classifier
    check_run_dir(directory)
    from iomt_ids.artifacts import load_bundle
    from iomt_ids.models.trees import tree_parts

    bundle = load_bundle(directory)
    parts = tree_parts(bundle.estimator)
    if not parts:
        raise ConfigError(
            f"--model {model}: holds {bundle.model_name!r}, a deep model; branch code is for tree models "
            "(lightgbm, random_forest, or an ensemble with one)."
        )
    import time

    for est in parts:
        t0 = time.perf_counter()
        tables = est.compiled_tables()  # loads this machine's trusted code, when cached
        if est.branch_code is not None and not force:
            typer.echo(
                f"{est.name}: branch code compiled on this machine is cached in {directory} (--force to redo)"
            )
            continue
        code = est.compile_code()
        typer.echo(
            f"compiled {est.name}: {tables.n_trees} trees, {tables.n_nodes:,} nodes -> branch code "
            f"({code.n_objects} objects) in {time.perf_counter() - t0:.1f} s; cached in {directory}"
        )
    if check:
        import numpy as np

        from iomt_ids.export.onnx import random_raw_rows

        raw = random_raw_rows(bundle, 1024)
        got = bundle.predict_proba(raw)
        for est in parts:
            est.use_backend("native")
        ref = bundle.predict_proba(raw)
        diff = float(np.abs(got.astype(np.float64) - ref).max())
        same = int((got.argmax(axis=1) == ref.argmax(axis=1)).sum())
        typer.echo(
            f"parity with the native model on 1024 rows: max abs difference {diff:.2e}, {same}/1024 same class"
        )
