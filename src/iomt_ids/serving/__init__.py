"""HTTP scoring service (needs the ``serve`` extra: ``pip install 'iomt-ids[serve]'``).

>>> from iomt_ids.artifacts import load_bundle                    # doctest: +SKIP
>>> from iomt_ids.serving import ServeSettings, create_app        # doctest: +SKIP
>>> app = create_app(load_bundle("runs/dnn"), ServeSettings())    # doctest: +SKIP
"""

from __future__ import annotations

from iomt_ids.serving.app import create_app
from iomt_ids.serving.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
