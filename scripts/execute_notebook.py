"""Execute lessons top to bottom in replay mode and save them with their outputs.

    .venv/bin/python scripts/execute_notebook.py notebooks/03_function_calling.ipynb [--script]

With ``--script`` the lesson is first run in record mode against its script
(``notebooks/cassettes/scripts/<lesson>.py``), which rewrites ``notebooks/cassettes/<lesson>.json``
from the requests the official SDKs actually send. Then it runs in replay mode at speed 0 and the
notebook is saved in place: kernel ``python3``, execution counts kept, widget state stripped.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def execute(path: Path, env: dict[str, str], timeout: int = 300) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    old = dict(os.environ)
    os.environ.update(env)
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return nb


def clean(nb: nbformat.NotebookNode) -> None:
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--script", action="store_true", help="re-create the scripted cassette first")
    args = parser.parse_args()
    for path in args.notebooks:
        path = path.resolve()
        if args.script:
            name = f"{path.stem}_solutions" if path.parent.name == "solutions" else path.stem
            script = ROOT / "notebooks" / "cassettes" / "scripts" / f"{name}.py"
            if not script.exists():
                print(f"{path.name}: no script at {script}", file=sys.stderr)
                return 2
            execute(path, {"LLMKIT_MODE": "record", "LLMKIT_SCRIPT": str(script), "LLMKIT_SPEED": "0"})
            print(f"{path.name}: cassette re-created from {script.name}")
        nb = execute(path, {"LLMKIT_MODE": "replay", "LLMKIT_SPEED": "0"})
        clean(nb)
        nbformat.write(nb, path)
        print(f"{path.name}: executed in replay mode and saved")
    return 0


if __name__ == "__main__":
    sys.exit(main())
