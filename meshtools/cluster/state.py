"""Where the cluster tasks remember things between runs (.mesh/cluster/, git-ignored):
the last image tag `inv build` made and the port-forwards `inv forward` started.
"""
from __future__ import annotations

import os
from pathlib import Path

from meshtools.shared.topology import PROJECT_ROOT

# Tests point this elsewhere so they never touch a developer's state.
STATE_DIR_ENV = "ENVOY_TRACING_STATE_DIR"


def state_dir() -> Path:
    path = Path(os.environ.get(STATE_DIR_ENV) or PROJECT_ROOT / ".mesh" / "cluster")
    path.mkdir(parents=True, exist_ok=True)
    return path
