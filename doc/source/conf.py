"""Sphinx configuration of the messaging documentation."""

from __future__ import annotations

import configparser
import sys
from pathlib import Path

# Build against this checkout even when the package is not installed editable.
# The configuration reference still needs the package installed: show-options
# finds list_opts() through the "oslo.config.opts" entry point.
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _version() -> str:
    # The one place the version is written is setup.cfg.
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    return setup["metadata"]["version"]


project = "messaging"
author = "The messaging authors"
copyright = "the messaging authors"
release = version = _version()

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
# Wide enough for a 100-column code block without a scroll bar.
html_theme_options = {"page_width": "1200px", "body_max_width": "none", "code_font_size": "0.85em"}
html_title = "messaging"
html_static_path: list[str] = []
