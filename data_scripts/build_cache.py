"""Resize a manifest's images once into a compact training cache (see joimternet_lite.data.cache).

    python data_scripts/build_cache.py --manifest data/openi --cache data/openi/cache_512 --size 512
"""

import argparse
import json
import sys

from joimternet_lite.data.cache import build_cache
from joimternet_lite.data.skips import TooManySkipsError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--manifest", required=True, help="manifest root (holds manifest/ and manifest.json)")
    p.add_argument("--cache", required=True, help="cache folder")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--workers", type=int, default=None, help="decode processes (default: all cores)")
    p.add_argument("--max-skip-fraction", type=float, default=0.05)
    args = p.parse_args(argv)
    try:
        summary = build_cache(args.manifest, args.cache, args.size, args.workers, args.max_skip_fraction)
    except TooManySkipsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
