"""A read-only usage dashboard over a ledger: an ASGI app (``pip install "openrouter-attribution[dashboard]"``).

``openrouter-attribution dashboard --db usage.db`` serves it on 127.0.0.1:8050; see docs/dashboard.md.
"""

from openrouter_attribution.dashboard.app import create_app

__all__ = ["create_app"]
