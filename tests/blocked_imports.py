"""Run Python code in a fresh interpreter where some packages cannot be imported (as if not installed).

A ``sys.meta_path`` finder placed first refuses the named top-level packages, so the test needs no
second virtualenv and uninstalls nothing.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

_BLOCKER = """
import importlib.abc, sys
class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r} or name in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Blocked())
"""


def run_without(blocked: set[str], code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (then ``args`` as ``sys.argv[1:]``) with the ``blocked`` modules unimportable."""
    script = _BLOCKER.format(blocked=sorted(blocked)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout)
