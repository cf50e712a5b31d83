"""Search: rank a folder's images for a sentence, or a manifest's reports for an image.

No notebook teaches it yet; docs/API.md shows it. The image side is kept in an on-disk embedding index (one safetensors file,
by default ``<folder>.joimternet-index.safetensors`` beside the folder), keyed on each file's path
relative to the folder, its size and its modification time (ns), and on a fingerprint of the model
weights and image size: a second query embeds only new or changed files, and an index written by
another model is rebuilt. The index stores global vectors (float32) and region vectors (float16,
half the disk; scores from them differ from direct ones by float16 rounding) so ``local`` and
``combined`` scoring work without re-embedding. Unreadable images are skipped, counted and listed
(``SearchResult.skipped``), never indexed, so they are tried again next time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from .atomic import atomic_path
from .data.errors import ImageReadError
from .data.tokenizer import split_words
from .errors import UserError
from .inference import ImageEmbeddings, ImageTextInference

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
INDEX_SUFFIX = ".joimternet-index.safetensors"
INDEX_FORMAT = "1"


class SearchError(UserError, ValueError):
    """A search that cannot run (empty query, no such folder, no images); the message says the fix."""


@dataclass
class ImageIndex:
    """Embeddings of a folder's images; row i belongs to ``paths[i]`` (relative, POSIX)."""

    paths: list[str]
    stamps: list[tuple[int, int]]   # (size in bytes, mtime in ns) of each file when it was embedded
    embeddings: ImageEmbeddings     # image_vectors (N, D) float32, regions (N, R, D)
    model_id: str

    @classmethod
    def load(cls, path: Path, model_id: str) -> ImageIndex | None:
        """The index at ``path``; None when absent, damaged or written for another model."""
        if not path.exists():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
            entries = json.loads(meta["entries"])
        except (SafetensorError, OSError, KeyError, ValueError):
            return None  # a damaged index is rebuilt, not trusted
        if meta.get("format") != INDEX_FORMAT or meta.get("model") != model_id:
            return None
        return cls([e[0] for e in entries], [(e[1], e[2]) for e in entries],
                   ImageEmbeddings(tensors["image_vectors"], tensors["regions"].float()), model_id)

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves the previous index, never half of one."""
        entries = json.dumps([[p, s, m] for p, (s, m) in zip(self.paths, self.stamps, strict=True)])
        tensors = {"image_vectors": self.embeddings.image_vectors.contiguous(),
                   "regions": self.embeddings.regions.half().contiguous()}
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"format": INDEX_FORMAT, "model": self.model_id,
                                                   "entries": entries})


@dataclass
class IndexUpdate:
    """What an update did: rows reused and embedded, files gone, and unreadable files skipped."""

    reused: int = 0
    embedded: int = 0
    removed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)


@dataclass
class SearchResult:
    hits: list[tuple[Path, float]]  # best first
    update: IndexUpdate
    index_path: Path
    indexed: int


def model_fingerprint(engine: ImageTextInference) -> str:
    """sha256 of the weights, the image size and the precision: an index is only reused by the model
    (and precision) that wrote it."""
    h = hashlib.sha256(f"{engine.config.data.image_size} {engine.precision}".encode())
    for name, value in sorted(engine.model.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def default_index_path(images_dir: Path) -> Path:
    return images_dir.parent / f"{images_dir.name}{INDEX_SUFFIX}"


def list_images(images_dir: Path) -> list[Path]:
    """Image files under ``images_dir`` (recursive, sorted); refuses a missing or image-less folder."""
    if not images_dir.is_dir():
        raise SearchError(f"{images_dir}: no such folder; --images takes a folder of PNG, JPEG or DICOM files")
    files = sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise SearchError(f"{images_dir}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder or below")
    return files


def update_index(engine: ImageTextInference, images_dir: Path, index_path: Path | None = None,
                 progress: bool = True) -> tuple[ImageIndex, IndexUpdate]:
    """Bring the index of ``images_dir`` up to date, embedding only new or changed files, and save it."""
    images_dir = Path(images_dir)
    index_path = Path(index_path) if index_path else default_index_path(images_dir)
    files = list_images(images_dir)
    model_id = model_fingerprint(engine)
    old = ImageIndex.load(index_path, model_id)
    known = {p: i for i, p in enumerate(old.paths)} if old else {}
    update = IndexUpdate()
    rows, todo = [], []
    for file in files:
        rel, stat = file.relative_to(images_dir).as_posix(), file.stat()
        stamp = (stat.st_size, stat.st_mtime_ns)
        i = known.get(rel)
        if old is not None and i is not None and old.stamps[i] == stamp:
            rows.append((rel, stamp, old.embeddings.image_vectors[i], old.embeddings.regions[i]))
        else:
            todo.append((file, rel, stamp))
    update.reused = len(rows)
    update.removed = len(set(known) - {f.relative_to(images_dir).as_posix() for f in files})
    rows += _embed_files(engine, todo, update, progress)
    index = _index_from(sorted(rows, key=lambda r: r[0]), model_id, engine)
    if update.embedded or update.removed or old is None:
        index.save(index_path)
    return index, update


def _embed_files(engine, todo, update: IndexUpdate, progress: bool) -> list:
    rows = []
    with tqdm(total=len(todo), desc="embedding images", unit="img", disable=not progress or not todo) as bar:
        for start in range(0, len(todo), engine.batch_size):
            chunk, prepared = [], []
            for file, rel, stamp in todo[start:start + engine.batch_size]:
                try:
                    prepared.append(engine.prepare(file))
                    chunk.append((rel, stamp))
                except ImageReadError as err:
                    update.skipped.append((rel, " ".join(str(err).split())))
            if prepared:
                out = engine.encode_images(torch.stack(prepared))
                rows += [(rel, stamp, v, r) for (rel, stamp), v, r in
                         zip(chunk, out.image_vectors, out.regions, strict=True)]
            bar.update(len(todo[start:start + engine.batch_size]))
    update.embedded = len(rows)
    return rows


def _index_from(rows: list, model_id: str, engine: ImageTextInference) -> ImageIndex:
    if not rows:
        dim, (gh, gw) = engine.config.model.embed_dim, engine.model.grid
        empty = ImageEmbeddings(torch.empty(0, dim), torch.empty(0, gh * gw, dim))
        return ImageIndex([], [], empty, model_id)
    return ImageIndex([r[0] for r in rows], [r[1] for r in rows],
                      ImageEmbeddings(torch.stack([r[2] for r in rows]), torch.stack([r[3] for r in rows])),
                      model_id)


def check_query(query: str) -> str:
    if not split_words(query or ""):
        raise SearchError(f"empty query {query!r}: give a sentence with words, e.g. --query 'left pleural effusion'")
    return query


def search_images(engine: ImageTextInference, images_dir: str | Path, query: str, top: int = 10,
                  scoring: str = "global", index_path: str | Path | None = None,
                  progress: bool = True) -> SearchResult:
    """The ``top`` images of ``images_dir`` for ``query``, best first, through the folder's index."""
    check_query(query)
    images_dir = Path(images_dir)
    index_path = Path(index_path) if index_path else default_index_path(images_dir)
    index, update = update_index(engine, images_dir, index_path, progress)
    hits = []
    if index.paths:
        scores = engine.similarity(index.embeddings, [query], scoring)[:, 0]
        best = scores.argsort(descending=True)[:top].tolist()
        hits = [(images_dir / index.paths[i], float(scores[i])) for i in best]
    return SearchResult(hits, update, index_path, len(index.paths))


def rank_reports(engine: ImageTextInference, image: str | Path, manifest_root: str | Path, top: int = 10,
                 scoring: str = "global") -> list[tuple[str, float, str]]:
    """The ``top`` reports of a manifest for one image: (study_id, score, text), best first.

    Raises ``ImageReadError`` naming the image when it cannot be read.
    """
    from .data.schema import load_manifest

    image_side = engine.embed_images([image])  # a bad image fails before the reports are embedded
    manifest = load_manifest(manifest_root)
    texts, ids = manifest["text"], manifest["study_id"]
    scores = engine.similarity(image_side, engine.embed_reports(texts), scoring)[0]
    return [(ids[i], float(scores[i]), texts[i]) for i in scores.argsort(descending=True)[:top].tolist()]


def describe_update(result: SearchResult) -> str:
    """One summary line, then one line per skipped file."""
    u = result.update
    lines = [f"index {result.index_path}: {result.indexed} images ({u.reused} reused, {u.embedded} embedded, "
             f"{u.removed} gone); {len(u.skipped)} unreadable file(s) skipped"]
    lines += [f"  skipped {path}: {reason}" for path, reason in u.skipped]
    return "\n".join(lines)


def search_command(args) -> int:
    """``python -m joimternet_lite search``: one result per line on stdout (path or study id, then
    the score), the index summary and skipped files on stderr."""
    import sys

    if bool(args.images) == bool(args.image):
        raise SearchError("give either --images DIR --query TEXT (rank images) or --image FILE --manifest ROOT "
                          "(rank reports)")
    if args.images and args.query is None:
        raise SearchError("--images needs --query TEXT, the sentence to rank the images for")
    if args.image and not args.manifest:
        raise SearchError("--image needs --manifest ROOT, the dataset whose reports are ranked")
    if args.images:
        check_query(args.query)
    engine = ImageTextInference.from_pretrained(args.model, device=args.device, precision=args.precision)
    if args.image:
        for study_id, score, text in rank_reports(engine, args.image, args.manifest, args.top, args.scoring):
            print(f"{study_id}\t{score:.4f}\t{text}")
        return 0
    result = search_images(engine, args.images, args.query, args.top, args.scoring, args.index)
    for path, score in result.hits:
        print(f"{path}\t{score:.4f}")
    print(describe_update(result), file=sys.stderr)
    return 0
