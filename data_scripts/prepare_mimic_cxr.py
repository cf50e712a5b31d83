"""Prepare MIMIC-CXR(-JPG) from your own PhysioNet download (this script never downloads it).

    python data_scripts/prepare_mimic_cxr.py --source physionet.org/files --out data/mimic [--split paper]

Same as `python -m joimternet_lite prepare mimic-cxr ...`; run with --help for the PhysioNet steps.
"""

import sys

from joimternet_lite.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "mimic-cxr", *sys.argv[1:]]))
