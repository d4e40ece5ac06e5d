"""Sphinx configuration of the lessons' book: ``make book`` builds it from the notebooks' saved outputs.

The notebooks are rendered by myst-nb as they are committed: nothing runs, so the book needs no key, no network
and no kernel. ``make book`` copies this folder, the lessons and their ``images/`` and ``solutions/`` into one
source folder.
"""

from pathlib import Path

project = "llmkit lessons"
author = "llmkit contributors"
extensions = ["myst_nb"]
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# Render what each lesson saved; never start a kernel.
nb_execution_mode = "off"
# Widget state is stripped from the lessons, so a widget view cannot render in a static page: show the output's
# text/html or text/plain fallback instead (and load no widget JavaScript from a CDN).
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
# Source links: each page links to its notebook as committed (a copy under _sources/).
html_copy_source = True
html_show_sourcelink = True
html_sourcelink_suffix = ""  # _sources/NN_name.ipynb is the notebook itself, ready to download and open
html_theme = "furo"
html_title = "llmkit lessons"
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"  # browsers ask for one; without it every page logs a 404


def _list_solutions(app, docname: str, source: list[str]) -> None:
    """Lessons link their worked solutions: give them a section of the index when the folder exists."""
    if docname == root_doc and Path(app.srcdir, "solutions").is_dir():
        source[0] += "\n```{toctree}\n:maxdepth: 1\n:caption: Worked solutions\n:glob:\n\nsolutions/*\n```\n"


def setup(app) -> None:
    app.connect("source-read", _list_solutions)
