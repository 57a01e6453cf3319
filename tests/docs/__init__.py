"""The code blocks of the documentation site (docs/*.md), run as tests."""
