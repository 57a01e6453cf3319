"""Framework-neutral wire format: request bodies out, completions, chunks and errors in.

Nothing here performs I/O or imports a framework or the ``openai`` SDK at import time.
"""
