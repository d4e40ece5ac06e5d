"""A pytest plugin for ``make notebooks``: each pytest process starts about 1.7 s (of CPU) sooner.

    python -m pytest -p scripts.nbval_startup --nbval ... notebooks

nbval imports nbformat, nbformat imports jsonschema, and jsonschema's format checker imports ``rfc3987_syntax``
when it is installed (check-jsonschema, used by ``make lint``, brings it). That module builds a Lark grammar while
it is imported: about 1.7 s of CPU, paid by each of the three processes of ``-n 2`` (the controller first, alone)
before any notebook runs. nbformat validates notebooks without a format checker, so nothing in these processes
uses it: mark it absent, and jsonschema skips that optional checker as it does when the package is not installed.
``-p`` loads this module before the installed plugins (nbval) are imported. The kernels are other processes and
are not affected. Introduced with the notebook suite's timing (docs/notebooks.md).
"""

from __future__ import annotations

import sys

sys.modules.setdefault("rfc3987_syntax", None)  # None in sys.modules: `import rfc3987_syntax` raises ImportError
