"""Execute the course notebooks in place, in full mode (or smoke mode), keeping their outputs.

`make notebooks` runs this. Execution metadata (timestamps, widget state) is stripped so that a
re-run only changes what the notebook actually printed or drew; streams are merged, keeping the
last frame of each text progress bar.

    python notebooks/run_notebooks.py [--smoke] [notebooks/05_global_alignment.ipynb ...]
"""

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert.preprocessors import CoalesceStreamsPreprocessor

from joimternet_lite.atomic import atomic_write_text

HERE = Path(__file__).resolve().parent


def strip_noise(nb: nbformat.NotebookNode) -> None:
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("ExecuteTime", None)
    # One output per stream, and of each text progress bar only its last frame, as a terminal shows it.
    CoalesceStreamsPreprocessor().preprocess(nb, {})


def run(path: Path, timeout: int) -> float:
    nb = nbformat.read(str(path), as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    strip_noise(nb)
    atomic_write_text(path, nbformat.writes(nb) + "\n")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--smoke", action="store_true", help="set JOIMTERNET_SMOKE=1")
    parser.add_argument("--timeout", type=int, default=3600)
    args = parser.parse_args()
    os.environ["JOIMTERNET_SMOKE"] = "1" if args.smoke else "0"
    paths = args.notebooks or sorted(HERE.glob("[0-9][0-9]_*.ipynb")) + sorted((HERE / "solutions").glob("*.ipynb"))
    for path in (p.resolve() for p in paths):
        seconds = run(path, args.timeout)
        print(f"{path.relative_to(HERE.parent)}: {seconds:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
