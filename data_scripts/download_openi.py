"""Download the OpenI / Indiana University chest X-ray collection from the NLM and prepare it.

    python data_scripts/download_openi.py --dest data/openi_raw [--prepare data/openi] [--record-checksums]

Downloads resume after a cut connection and are checked against sha256. The NLM does not publish
checksums and none are recorded yet (SHA256 below is None): ``--record-checksums`` writes the
digests of a first download to ``<dest>/checksums.json``; later runs verify against that file. Paste
the printed values into SHA256 here once confirmed on a second machine.

No network? Download the two files by hand from the URLs below (a browser works), put them in
``--dest``, and run again: present files are verified, not fetched. A copy in another layout (Kaggle's
``indiana_reports.csv`` + ``images_normalized``, R2Gen's ``iu_xray``) needs no download: give its
folder to ``prepare openi --source`` (the README lists the names it accepts). A partial download
prepares the studies whose images are there and reports the rest as missing.

The NLM PNGs are about 2048 px: for CPU training (``openi_cpu``) build a 128 px cache first.
"""

import argparse
import json
import sys
from pathlib import Path

from joimternet_lite.data.download import DownloadError, download, sha256_of

BASE = "https://openi.nlm.nih.gov/imgs/collections/"
FILES = {"reports": "NLMCXR_reports.tgz", "images": "NLMCXR_png.tgz"}
SHA256 = {"NLMCXR_reports.tgz": None, "NLMCXR_png.tgz": None}  # to be filled at the first verified download
LICENCE = (
    "Indiana University Chest X-ray Collection (OpenI, NLM): licensed CC BY-NC-ND 4.0 "
    "(https://creativecommons.org/licenses/by-nc-nd/4.0/). Non-commercial use, attribution, no "
    "redistribution of modified data. Cite Demner-Fushman et al., JAMIA 2016."
)


def expected_sha256(dest: Path, name: str) -> str | None:
    recorded = dest / "checksums.json"
    local = json.loads(recorded.read_text()).get(name) if recorded.exists() else None
    return SHA256.get(name) or local


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dest", required=True, type=Path)
    p.add_argument("--only", choices=sorted(FILES), help="fetch only the reports or only the images")
    p.add_argument("--record-checksums", action="store_true", help="save the sha256 of unverified files")
    p.add_argument("--prepare", type=Path, help="then build the manifest in this folder")
    args = p.parse_args(argv)
    print(LICENCE)
    recorded = {}
    for key, name in FILES.items():
        if args.only and key != args.only:
            continue
        try:
            path = download(BASE + name, args.dest / name, expected_sha256(args.dest, name))
        except DownloadError as err:
            print(f"error: {err}\nBy hand: download {BASE + name} and place it in {args.dest}.", file=sys.stderr)
            return 1
        if expected_sha256(args.dest, name) is None:
            recorded[name] = sha256_of(path)
            print(f"{name}: sha256 {recorded[name]} (not verified: no published checksum)")
    if recorded and args.record_checksums:
        path = args.dest / "checksums.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**old, **recorded}, indent=2))
        print(f"recorded in {path}")
    if args.prepare:
        from joimternet_lite.cli import main as cli_main

        code = cli_main(["prepare", "openi", "--source", str(args.dest), "--out", str(args.prepare)])
        if code == 0:
            print(f"next, on a CPU: python data_scripts/build_cache.py --manifest {args.prepare} --cache "
                  f"{args.prepare}/cache_128 --size 128, then python -m joimternet_lite train --config openi_cpu "
                  f"data.root={args.prepare} data.cache_dir={args.prepare}/cache_128")
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
