"""Cost per image of prepare's image check (default) and of a full decode (--verify-decode).

    python bench/image_checks.py [--files 6]

Files are generated here at real sizes with bench/data_pipeline.py's textured films (so compression
is realistic): 2048 x 2500 16-bit PNG, 2048 x 2496 8-bit PNG (OpenI), 2544 x 3056 JPEG
(MIMIC-CXR-JPG) and 2500 x 3000 uncompressed 16-bit DICOM (MIMIC-CXR). Each file is read once
before timing, so the figures are CPU cost of one process with the file in the page cache; on a
cold disk add (bytes read / disk read rate). The hours assume 16 independent processes (prepare
runs the checks in a process pool). Prints a Markdown table for bench/RESULTS.md, section "Image checks
at prepare time (CPU)", and the hours that MIMIC-CXR's 377,110 images take on 16 cores.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_pipeline import film, write_cr_dicom  # noqa: E402  (the same generated films)

from joimternet_lite.data.verify import check_image  # noqa: E402
from joimternet_lite.markdown import markdown_table  # noqa: E402

MIMIC_IMAGES, CORES, BUDGET_S = 377_110, 16, 3600.0
KINDS = {  # name -> (shape (H, W), suffix)
    "PNG 16-bit": ((2500, 2048), "png"),
    "PNG 8-bit (OpenI)": ((2496, 2048), "png"),
    "JPEG (MIMIC-CXR-JPG)": ((3056, 2544), "jpg"),
    "DICOM 16-bit uncompressed (MIMIC-CXR)": ((3000, 2500), "dcm"),
}


def write(name: str, path: Path, seed: int) -> None:
    shape, suffix = KINDS[name]
    img = film(shape, seed)
    if suffix == "dcm":
        write_cr_dicom((img * 4095).astype(np.uint16), path)
    elif "16-bit" in name:
        Image.fromarray((img * 65535).astype(np.uint16)).save(path)
    elif suffix == "png":
        Image.fromarray((img * 255).astype(np.uint8)).save(path)
    else:
        Image.fromarray((img * 255).astype(np.uint8)).save(path, quality=95)


def seconds_per_file(paths: list[Path], decode: bool) -> float:
    """Median seconds of one check_image call (one process)."""
    times = []
    for path in paths:
        start = time.perf_counter()
        result = check_image(path, decode=decode)
        times.append(time.perf_counter() - start)
        assert result.problem is None, result.problem
    return float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=6, help="files per kind")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (_, suffix) in KINDS.items():
            paths = [Path(tmp) / f"{suffix}{len(rows)}_{i}.{suffix}" for i in range(args.files)]
            for i, path in enumerate(paths):
                write(name, path, i)
                path.read_bytes()  # into the page cache
            check, decode = seconds_per_file(paths, False), seconds_per_file(paths, True)
            mb = np.mean([x.stat().st_size for x in paths]) / 1e6
            hours = [MIMIC_IMAGES * t / CORES / 3600 for t in (check, decode)]
            rows.append([name, f"{mb:.1f}", 1000 * check, 1000 * decode, *hours])
    print(markdown_table(["file", "MB", "check ms/img", "full decode ms/img", "377k checked on 16 cores (h)",
                          "377k decoded on 16 cores (h)"], rows, digits=[0, 0, 1, 1, 2, 2]))
    print(f"budget: {MIMIC_IMAGES:,} images in {BUDGET_S / 3600:.0f} h on {CORES} cores = "
          f"{1000 * BUDGET_S * CORES / MIMIC_IMAGES:.0f} ms per image per core")


if __name__ == "__main__":
    main()
