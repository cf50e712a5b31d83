"""Data pipeline throughput on CPU: decode, cache build and SynthCXR generation (images/s per core).

    python bench/data_pipeline.py [--images 24] [--size 512] [--synth 16]

Inputs are generated here at real sizes (2048 x 2496 8-bit PNG like OpenI, 2544 x 3056 JPEG like
MIMIC-CXR-JPG, 2500 x 3000 16-bit DICOM like MIMIC-CXR), with smooth texture so compression is
realistic. Results go in bench/RESULTS.md, section "Data pipeline (CPU)".
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from joimternet_lite.data.cache import build_cache, letterbox
from joimternet_lite.data.images import read_image
from joimternet_lite.data.schema import empty_labels, save_manifest

SHAPES = {"png": (2496, 2048), "jpg": (3056, 2544), "dcm": (3000, 2500)}


def film(shape, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.random((shape[0] // 64 + 1, shape[1] // 64 + 1))
    smooth = np.kron(coarse, np.ones((64, 64)))[: shape[0], : shape[1]]
    return np.clip(smooth * 0.8 + rng.random(shape) * 0.2, 0, 1)


def write(kind: str, path: Path, seed: int) -> None:
    img = film(SHAPES[kind], seed)
    if kind == "png":
        Image.fromarray((img * 255).astype(np.uint8)).save(path)
    elif kind == "jpg":
        Image.fromarray((img * 255).astype(np.uint8)).save(path, quality=95)
    else:
        write_cr_dicom((img * 4095).astype(np.uint16), path)


def write_cr_dicom(stored: np.ndarray, path: Path) -> None:
    """A 12-bit MONOCHROME1 CR image, uncompressed, as MIMIC-CXR ships them."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1", generate_uid()
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME1", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)


def timed(fn, n) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--images", type=int, default=24)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--synth", type=int, default=16)
    args = p.parse_args()
    print(f"cpu cores visible: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        records = []
        for kind in SHAPES:
            paths = [root / f"{kind}{i}.{kind}" for i in range(args.images // 3)]
            for i, path in enumerate(paths):
                write(kind, path, i)
            full = timed(lambda i, paths=paths: read_image(paths[i]), len(paths))
            cached = timed(lambda i, paths=paths: letterbox(read_image(paths[i], min_size=args.size), args.size),
                           len(paths))
            print(f"{kind} {SHAPES[kind]}: decode {full:.1f} img/s/core; decode+resize to {args.size} {cached:.1f} img/s/core")
            records += [{"study_id": x.name, "image_paths": [str(x)], "views": ["frontal"], "findings": "",
                         "impression": "", "text": "x", "labels": empty_labels(), "split": "train"} for x in paths]
        save_manifest(records, root / "m", source="bench")
        for workers in (1, 2):
            s = build_cache(root / "m", root / f"cache{workers}", args.size, workers, progress=False)
            print(f"build_cache mixed, {workers} worker(s): {s['images_per_s']:.1f} img/s "
                  f"({s['images_per_s'] / workers:.1f} per core)")
        try:
            from joimternet_lite.data.synthcxr import generate_synthcxr
        except ImportError:
            print("SynthCXR: joimternet_lite.data.synthcxr.generate_synthcxr not available")
            return
        for size in (256, 512):
            start = time.perf_counter()
            generate_synthcxr(root / f"synth{size}", num_studies=args.synth, image_size=size, workers=1, progress=False)
            print(f"SynthCXR {size}px, 1 worker: {args.synth / (time.perf_counter() - start):.1f} studies/s")


if __name__ == "__main__":
    main()
