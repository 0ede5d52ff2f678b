"""Sphinx configuration of the messaging documentation."""

from __future__ import annotations

import sys
from pathlib import Path

# Build against this checkout even when the package is not installed editable.
# The configuration reference still needs the package installed: show-options
# finds list_opts() through the "oslo.config.opts" entry point.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

project = "messaging"
author = "The messaging authors"
copyright = "the messaging authors"
release = "0.1.0"

extensions = [
    "oslo_config.sphinxext",
    "reno.sphinxext",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

nitpicky = False
exclude_patterns: list[str] = []
html_theme = "alabaster"
html_title = "messaging"
html_static_path: list[str] = []
