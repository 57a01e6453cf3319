"""Re-execute notebooks offline and save them with their outputs: ``make notebooks``.

Usage: ``python -m tests.notebooks.refresh [NOTEBOOK ...]`` (default: every notebook of
``notebooks/``). Refuses to save outputs that would change from one run to the next (ports, paths,
generated ids, dates); ``make test`` fails when a saved notebook's outputs are stale.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.notebooks import runner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks to refresh (default: all)")
    args = parser.parse_args(argv)
    paths = args.paths or runner.notebooks()
    failed = 0
    with runner.offline_kernel_env() as kernel:
        for path in paths:
            with tempfile.TemporaryDirectory(prefix="notebook-") as workdir:
                try:
                    nb = runner.execute(path, Path(workdir), kernel)
                except runner.NotebookFailed as err:
                    print(f"FAILED {path.name}:\n{err}", file=sys.stderr)
                    failed += 1
                    continue
            findings = runner.volatile_findings(nb)
            if findings:
                print(f"NOT SAVED {path.name}: its outputs would change on every run:", file=sys.stderr)
                print("\n".join(f"  {finding}" for finding in findings), file=sys.stderr)
                failed += 1
                continue
            runner.save(nb, path)
            print(f"saved {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
