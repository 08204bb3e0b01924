"""Export a bundle to ONNX, and score with ONNX Runtime.

Every model kind exports: the PyTorch models through ``torch.onnx`` (below), the tree
models (LightGBM, random forest) as ONNX-ML tree operators (:mod:`iomt_ids.export.trees`).
The exported graph takes **raw rows** and returns probabilities:

* input ``features``: float64 ``(batch, n_columns)``, the bundle's release columns in
  schema order (:attr:`ModelBundle.input_columns`), values as read (``inf``/NaN kept);
* output ``probabilities``: float32 ``(batch, n_classes)``, columns in the order of the
  bundle's classes; the batch axis is dynamic.

Preprocessing is folded into the graph as its first layers
(:class:`~iomt_ids.export.inference.FoldedPreprocessing`): ``IsNaN``/``Where`` fill
the empty ``Std``/``Variance`` with 0, ``Where`` on ``+/-inf`` applies the fitted
caps of ``Rate``/``Srate``/``Drate``, then ``Gather`` (kept columns), ``Sub``/``Div``
(the fitted scaler) in float64 and a cast to float32. The graph does not *validate*
its input: NaN or inf in a column where the policy allows none passes through.
:class:`OnnxScorer` therefore runs :func:`~iomt_ids.data.preprocess.check_special_values`
in NumPy before the session, so that bad rows raise the same :class:`BadValueError`
as the PyTorch path. Graph metadata (``metadata_props``) records the bundle version,
release, input columns and classes; :class:`OnnxScorer` refuses a file exported
from another bundle.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from iomt_ids.artifacts import ModelBundle, load_bundle
from iomt_ids.data.preprocess import check_special_values
from iomt_ids.exceptions import BundleError, ConfigError, SchemaError

__all__ = [
    "INPUT_NAME",
    "ONNX_FILE",
    "OUTPUT_NAME",
    "OnnxScorer",
    "export_onnx",
    "onnxruntime_available",
    "parity",
    "random_raw_rows",
]

log = logging.getLogger(__name__)

INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"
#: File name that ``predict`` looks for inside a RUN_DIR.
ONNX_FILE = "model.onnx"


def onnxruntime_available() -> bool:
    """Whether ``onnxruntime`` can be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _as_bundle(model: ModelBundle | str | Path) -> ModelBundle:
    return model if isinstance(model, ModelBundle) else load_bundle(model)


def export_onnx(
    model: ModelBundle | str | Path,
    out: str | Path,
    *,
    optimize: bool = True,
    opset: int = 18,
    dynamo: bool | None = None,
) -> Path:
    """Write ``model`` (a bundle or RUN_DIR) as an ONNX graph with preprocessing folded in.

    Parameters
    ----------
    model: a loaded bundle or its directory.
    out: the ``.onnx`` file to write (parent folders are created).
    optimize: apply :func:`~iomt_ids.export.inference.optimize_for_inference` first
        (single-step recurrent layers, BatchNorm folded); same outputs, fewer operations.
    opset: ONNX opset version.
    dynamo: use the ``torch.export``-based exporter (True), the TorchScript one (False),
        or try the first and fall back to the second (None).

    Returns
    -------
    The path written.

    A tree bundle (LightGBM, random forest) becomes ONNX-ML tree operators after the same
    folded preprocessing (:mod:`iomt_ids.export.trees`); ``optimize`` and ``dynamo`` apply
    to PyTorch models only.

    Raises
    ------
    BundleError: the bundle's model cannot be exported, or the export fails.
    """
    bundle = _as_bundle(model)
    out = Path(out)
    from iomt_ids.export.trees import export_tree_onnx, is_tree_bundle

    if is_tree_bundle(bundle):
        export_tree_onnx(bundle, out, opset)
        _write_metadata(out, bundle, optimize=False)
        log.info("exported %s -> %s", bundle.version, out)
        return out
    if bundle.torch_module is None:
        raise BundleError(
            f"bundle {bundle.version}: model {bundle.model_name!r} cannot be exported to ONNX yet; "
            "PyTorch and tree models (lightgbm, random_forest) can."
        )
    import torch

    from iomt_ids.export.inference import inference_module

    module = inference_module(bundle, optimize=optimize)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = (torch.zeros(2, len(bundle.input_columns), dtype=torch.float64),)
    names = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME], "opset_version": opset}
    errors: list[str] = []
    for use_dynamo in [True, False] if dynamo is None else [dynamo]:
        try:
            chatter = io.StringIO()  # the exporter prints its progress; keep it out of CLI output
            with contextlib.redirect_stdout(chatter), warnings.catch_warnings(), _quiet_exporter_logs():
                warnings.simplefilter("ignore")
                _export(module, example, out, use_dynamo, names)
            log.debug("exporter output: %s", chatter.getvalue())
            break
        except Exception as exc:  # exporter failures come in many types
            errors.append(f"{'dynamo' if use_dynamo else 'torchscript'} exporter: {exc}")
            log.debug("ONNX export attempt failed: %s", errors[-1])
    else:
        raise BundleError(f"{bundle.version}: ONNX export failed; " + " | ".join(errors))
    _write_metadata(out, bundle, optimize)
    log.info("exported %s -> %s", bundle.version, out)
    return out


@contextlib.contextmanager
def _quiet_exporter_logs() -> Iterator[None]:
    """Raise the exporters' own loggers to ERROR for the duration (their INFO/WARNING lines are progress)."""
    names = ("torch.onnx", "onnx_ir", "onnxscript")
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)


def _export(
    module: Any, example: tuple[Any, ...], out: Path, use_dynamo: bool, names: dict[str, Any]
) -> None:
    """One call of the ``torch.export``-based (dynamo) or the TorchScript exporter."""
    import torch

    if use_dynamo:
        batch = torch.export.Dim("batch")
        torch.onnx.export(
            module,
            example,
            str(out),
            dynamo=True,
            dynamic_shapes={"features": {0: batch}},
            verbose=False,
            **names,
        )
    else:
        torch.onnx.export(
            module, example, str(out), dynamo=False,
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, **names,
        )  # fmt: skip


def _write_metadata(path: Path, bundle: ModelBundle, optimize: bool) -> None:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    # the dynamo exporter may write the weights beside the graph (model.onnx.data); a model under
    # protobuf's 2 GiB limit is saved as one file below, and that side file removed
    sidecars = {
        e.value
        for t in proto.graph.initializer
        if t.data_location == onnx.TensorProto.EXTERNAL
        for e in t.external_data
        if e.key == "location"
    }
    if sidecars:
        onnx.load_external_data_for_model(proto, str(path.parent))
    meta = {
        "iomt_ids.bundle_version": bundle.version,
        "iomt_ids.model": bundle.model_name,
        "iomt_ids.task": str(bundle.task),
        "iomt_ids.release": bundle.release,
        "iomt_ids.input_columns": json.dumps(list(bundle.input_columns)),
        "iomt_ids.classes": json.dumps(list(bundle.classes)),
        "iomt_ids.preprocessing": "folded (clean, select, scale); input is raw rows, validate first",
        "iomt_ids.optimized": str(bool(optimize)),
    }
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name = "iomt-ids"
    if proto.ByteSize() < 2**31 - 1:
        onnx.save(proto, str(path))
        for name in sidecars:
            (path.parent / name).unlink(missing_ok=True)
    else:  # too large for one protobuf: the weights stay in one side file
        onnx.save(proto, str(path), save_as_external_data=True, location=f"{path.name}.data")


class OnnxScorer:
    """Score raw rows with an exported graph in ONNX Runtime.

    Parameters
    ----------
    path: the ``.onnx`` file written by :func:`export_onnx`.
    bundle: when given, the graph must come from this bundle (same version and columns).
    threads: ONNX Runtime intra-op threads (0 = its default).
    batch_size: rows per session call; larger inputs are scored in chunks of this size, which
        keeps intermediate activations in cache (a 1 M-row call is slower per row than 8 k-row ones).
    """

    def __init__(
        self, path: str | Path, bundle: ModelBundle | None = None, threads: int = 0, batch_size: int = 8192
    ) -> None:
        self.batch_size = max(1, int(batch_size))
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError(
                "onnxruntime is not installed; install the 'onnx' extra: pip install 'iomt-ids[onnx]'."
            ) from None
        self.path = Path(path)
        if not self.path.is_file():
            raise BundleError(f"{self.path}: ONNX file does not exist.")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise BundleError(f"{self.path}: not a loadable ONNX model: {exc}") from None
        self.meta: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self.input_columns: tuple[str, ...] = tuple(json.loads(self.meta.get("iomt_ids.input_columns", "[]")))
        self.classes: tuple[str, ...] = tuple(json.loads(self.meta.get("iomt_ids.classes", "[]")))
        if [i.name for i in self.session.get_inputs()] != [INPUT_NAME]:
            raise BundleError(f"{self.path}: graph input must be named {INPUT_NAME!r}.")
        if bundle is not None:
            version = self.meta.get("iomt_ids.bundle_version")
            if version != bundle.version or self.input_columns != bundle.input_columns:
                raise BundleError(
                    f"{self.path}: exported from bundle {version!r}, not from {bundle.version!r}; "
                    "run 'iomt-ids export' again."
                )

    def predict_proba_matrix(self, x: np.ndarray, source: str = "input") -> np.ndarray:
        """Probabilities for raw rows ``x`` (n, n_columns) in the graph's column order."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.input_columns):
            raise SchemaError(
                f"{source}: expected an array of shape (n, {len(self.input_columns)}); got {x.shape}."
            )
        check_special_values(x, self.input_columns, source)
        if x.shape[0] == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        if x.shape[0] <= self.batch_size:
            return self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        out = np.empty((x.shape[0], len(self.classes)), dtype=np.float32)
        for start in range(0, x.shape[0], self.batch_size):
            stop = start + self.batch_size
            out[start:stop] = self.session.run([OUTPUT_NAME], {INPUT_NAME: x[start:stop]})[0]
        return out


def parity(bundle: ModelBundle | str | Path, onnx_path: str | Path, rows: Any) -> float:
    """Largest absolute difference between the bundle's and the ONNX graph's probabilities on ``rows``."""
    b = _as_bundle(bundle)
    x = b._matrix(rows, "parity rows")
    ref = b.predict_proba(x)
    got = OnnxScorer(onnx_path, b).predict_proba_matrix(x)
    return float(np.abs(ref.astype(np.float64) - got.astype(np.float64)).max(initial=0.0))


def random_raw_rows(bundle: ModelBundle | str | Path, n: int = 256, seed: int = 0) -> np.ndarray:
    """Raw rows around the bundle's training statistics, with ``inf`` and NaN where the policy allows.

    Used to check an export without any data at hand: values are drawn around the
    fitted means and spreads (dropped columns get 0), and about 10 % of the allowed
    cells are set to ``+inf`` (rate columns) or NaN (``Std``/``Variance``).
    """
    from iomt_ids.data.preprocess import INF_ALLOWED, NAN_ALLOWED

    b = _as_bundle(bundle)
    pre = b.preprocessor
    rng = np.random.default_rng(seed)
    x = np.zeros((n, len(pre.input_columns)))
    for k, col in enumerate(pre.kept_columns_):
        j = pre.input_columns.index(col)
        mean, std = float(pre.mean_[k]), float(pre.scale_[k])  # type: ignore[index]
        x[:, j] = mean + std * rng.standard_normal(n)
    for j, col in enumerate(pre.input_columns):
        if col in INF_ALLOWED:
            x[rng.random(n) < 0.1, j] = np.inf
        if col in NAN_ALLOWED:
            x[rng.random(n) < 0.1, j] = np.nan
    return x
