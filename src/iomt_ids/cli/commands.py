"""Import every command module so that each registers its commands on the root app."""

from __future__ import annotations

# One import per command module; keep sorted.
from iomt_ids.cli import (
    adapt,  # noqa: F401
    audit,  # noqa: F401
    compare,  # noqa: F401
    compile,  # noqa: F401
    dashboard,  # noqa: F401
    demo,  # noqa: F401
    detect,  # noqa: F401
    evaluate,  # noqa: F401
    export,  # noqa: F401
    extract,  # noqa: F401
    lab,  # noqa: F401
    predict,  # noqa: F401
    reproduce,  # noqa: F401
    scan,  # noqa: F401
    score_alerts,  # noqa: F401
    serve,  # noqa: F401
    train,  # noqa: F401
)
