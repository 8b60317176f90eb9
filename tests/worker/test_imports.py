"""The daemon imports the local backend without MLX: only the worker process loads it."""

from __future__ import annotations

import subprocess
import sys

from tests.worker.helpers import WAIT_S


def test_the_daemon_side_imports_no_mlx():
    code = (
        "import sys, mlxgw.backends.local, mlxgw.worker.demo;"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('mlx', 'mlx_lm', 'transformers')];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT_S)
    assert out.stdout.strip() == "[]", out.stderr
