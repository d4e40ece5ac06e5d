"""``python -m llmkit``: the same command as the ``llmkit`` console script (lesson 0, 00_setup_and_replay).

Useful where the venv's ``bin/`` is not on ``PATH``: ``python -m llmkit serve --cassette ...``.
"""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
