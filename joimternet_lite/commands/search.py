"""Search: rank a folder's images for a sentence, or a manifest's reports for an image.

No notebook teaches it yet; docs/API.md shows it. The image side is kept in an on-disk embedding
index (one safetensors file, by default ``.joimternet-index.safetensors`` inside the folder, so a
folder has one index however its path is spelled), keyed on each file's path relative to the
folder, its size and its modification time (ns), and on a fingerprint of the model weights and
image size: a second query embeds only new or changed files, and an index written by another
model is rebuilt, as is a damaged one (with a warning). The index stores global vectors (float32)
and region vectors (float16, half the disk; scores from them differ from direct ones by float16
rounding) so ``local`` and ``combined`` scoring work without re-embedding. Unreadable images are
skipped, counted and listed (``SearchResult.update.skipped``), never indexed, so they are tried
again next time. An index that cannot be written still gives results (``update.not_kept`` says why).
A file given as the index is replaced only when it is an index (or with ``overwrite``).
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

from ..atomic import atomic_path
from ..data.errors import ImageReadError
from ..data.images import IMAGE_SUFFIXES, list_image_files
from ..errors import UserError
from ..inference import ImageEmbeddings, ImageInput, ImageTextInference, check_sentence, reader_warnings
from ..terminal import printable

INDEX_NAME = ".joimternet-index.safetensors"
INDEX_FORMAT = "1"
_INDEX_KEYS = ("format", "model", "entries")  # the safetensors metadata that marks a file as an index


class SearchError(UserError, ValueError):
    """A search that cannot run (no such folder, no readable images, an --index that is not an index)."""


class DamagedIndexError(SearchError):
    """An index file that cannot be read back; ``update_index`` rebuilds it."""


@dataclass
class ImageIndex:
    """Embeddings of a folder's images; row i belongs to ``paths[i]`` (relative, POSIX)."""

    paths: list[str]
    stamps: list[tuple[int, int]]   # (size in bytes, mtime in ns) of each file when it was embedded
    embeddings: ImageEmbeddings     # image_vectors (N, D) float32, regions (N, R, D)
    model_id: str

    @classmethod
    def load(cls, path: Path, model_id: str) -> ImageIndex | None:
        """The index at ``path``; None when absent or written for another model.

        Raises ``DamagedIndexError`` when the file is not an index or cannot be read back whole.
        """
        if not path.exists():
            return None
        meta = index_metadata(path)
        if meta is None:
            raise DamagedIndexError(f"{path}: not a search index (no index metadata in a safetensors header)")
        if meta["format"] != INDEX_FORMAT or meta["model"] != model_id:
            return None
        try:
            entries = _entries(json.loads(meta["entries"]))
            with safe_open(str(path), framework="pt") as f:
                vectors, regions = f.get_tensor("image_vectors"), f.get_tensor("regions")
        except (SafetensorError, OSError, KeyError, ValueError, TypeError) as err:
            raise DamagedIndexError(f"{path}: damaged search index ({type(err).__name__}: {err})") from err
        if not (vectors.dim() == 2 and regions.dim() == 3 and vectors.shape[0] == regions.shape[0] == len(entries)
                and regions.shape[2] == vectors.shape[1]):
            raise DamagedIndexError(f"{path}: damaged search index ({len(entries)} entries, vectors "
                                    f"{tuple(vectors.shape)}, regions {tuple(regions.shape)})")
        return cls([e[0] for e in entries], [(e[1], e[2]) for e in entries],
                   ImageEmbeddings(vectors.float(), regions.float()), model_id)

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves the previous index, never half of one."""
        entries = json.dumps([[p, s, m] for p, (s, m) in zip(self.paths, self.stamps, strict=True)])
        tensors = {"image_vectors": self.embeddings.image_vectors.contiguous(),
                   "regions": self.embeddings.regions.half().contiguous()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"format": INDEX_FORMAT, "model": self.model_id,
                                                   "entries": entries})


def index_metadata(path: Path) -> dict | None:
    """The metadata of the safetensors file at ``path`` when it marks an index, else None.

    Reads only the header (8-byte length, then JSON), so any file can be asked, a large one cheaply.
    """
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 2 <= size <= path.stat().st_size - 8:
                return None
            header = json.loads(f.read(size))
    except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8
        return None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) and all(isinstance(meta.get(k), str) for k in _INDEX_KEYS) else None


def _entries(rows) -> list[tuple[str, int, int]]:
    """The index's rows [path, size, mtime_ns] checked for type; ValueError when one is malformed."""
    if not isinstance(rows, list) or not all(
            isinstance(r, list) and len(r) == 3 and isinstance(r[0], str) and all(type(v) is int for v in r[1:])
            for r in rows):
        raise ValueError("its entries are not [path, size, mtime] rows")
    return [tuple(r) for r in rows]


@dataclass
class IndexUpdate:
    """What an update did: rows reused and embedded, files gone, unreadable files skipped, and
    anything the user should know about the index file itself."""

    reused: int = 0
    embedded: int = 0
    removed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (relative path, reason)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (relative path, a reader's warning)
    damaged: str | None = None    # why the old index was not used and was rebuilt
    not_kept: str | None = None   # why the index could not be written (the results are complete)


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
    """The folder's own index, inside it: ``.``, ``..``/name and the full path give the same file."""
    return Path(images_dir) / INDEX_NAME


def check_index_file(path: Path, overwrite: bool = False) -> None:
    """Refuse an ``--index`` that would replace a file which is not a search index."""
    if path.is_dir():
        raise SearchError(f"{path}: is a folder; --index takes a file, e.g. {path / 'images.safetensors'}")
    if path.exists() and not overwrite and index_metadata(path) is None:
        raise SearchError(f"{path}: exists and is not a search index, so it is not replaced; give --index a new "
                          "file name, or add --overwrite to replace it")


def list_images(images_dir: Path) -> tuple[list[tuple[str, Path, tuple[int, int]]], list[tuple[str, str]]]:
    """The image files under ``images_dir`` (recursive, sorted) as (relative path, path, (size,
    mtime ns)), and the entries with an image suffix that are no file to read (a FIFO, a folder
    named ``x.png``, a broken link) as (relative path, reason). Refuses a missing folder, or one
    without any such entry."""
    if not images_dir.is_dir():
        raise SearchError(f"{images_dir}: no such folder; --images takes a folder of PNG, JPEG or DICOM files")
    files, refused = list_image_files(images_dir)
    if not files and not refused:
        raise SearchError(f"{images_dir}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder or below")
    infos = [f.stat() for f in files]
    return ([(f.relative_to(images_dir).as_posix(), f, (i.st_size, i.st_mtime_ns)) for f, i in zip(files, infos, strict=True)],
            [(p.relative_to(images_dir).as_posix(), _reason(p, problem)) for p, problem in refused])


def _reason(path: Path, message: str) -> str:
    """A reader's message about ``path`` on one line, without the path (the skip line names it)."""
    return " ".join(message.removeprefix(f"{path}: ").split())


def update_index(engine: ImageTextInference, images_dir: Path, index_path: Path | None = None,
                 progress: bool = True, overwrite: bool = False) -> tuple[ImageIndex, IndexUpdate]:
    """Bring the index of ``images_dir`` up to date, embedding only new or changed files, and save it.

    ``index_path`` (default: inside the folder) must be new, or an index unless ``overwrite``.
    """
    images_dir = Path(images_dir)
    if index_path is not None:
        check_index_file(Path(index_path), overwrite)
    index_path = Path(index_path) if index_path else default_index_path(images_dir)
    files, skipped = list_images(images_dir)
    update = IndexUpdate(skipped=skipped)
    model_id = model_fingerprint(engine)
    old = _load_or_note_damage(index_path, model_id, engine, update)
    known = {p: i for i, p in enumerate(old.paths)} if old else {}
    rows, todo = [], []
    for rel, file, stamp in files:
        i = known.get(rel)
        if old is not None and i is not None and old.stamps[i] == stamp:
            rows.append((rel, stamp, old.embeddings.image_vectors[i], old.embeddings.regions[i]))
        else:
            todo.append((file, rel, stamp))
    update.reused = len(rows)
    update.removed = len(set(known) - {rel for rel, _, _ in files})
    rows += _embed_files(engine, todo, update, progress)
    index = _index_from(sorted(rows, key=lambda r: r[0]), model_id, engine)
    if update.embedded or update.removed or old is None:
        try:
            index.save(index_path)
        except OSError as err:  # a read-only folder or a full disk: the results stand, the index is lost
            update.not_kept = f"{index_path}: {err.strerror or err}"
    return index, update


def _load_or_note_damage(index_path: Path, model_id: str, engine, update: IndexUpdate) -> ImageIndex | None:
    """The reusable old index, or None; a damaged one (rows of the wrong size included) is noted and rebuilt."""
    try:
        old = ImageIndex.load(index_path, model_id)
    except DamagedIndexError as err:
        update.damaged = str(err)
        return None
    if old is not None and old.embeddings.regions.shape[1:] != _row_shape(engine):
        update.damaged = f"{index_path}: damaged search index (rows of shape {tuple(old.embeddings.regions.shape[1:])})"
        return None
    return old


def _embed_files(engine, todo, update: IndexUpdate, progress: bool) -> list:
    rows = []
    with tqdm(total=len(todo), desc="embedding images", unit="img", disable=not progress or not todo) as bar:
        for start in range(0, len(todo), engine.batch_size):
            chunk, prepared = [], []
            for file, rel, stamp in todo[start:start + engine.batch_size]:
                notes = []
                try:
                    with reader_warnings(notes):
                        prepared.append(engine.prepare(file))
                    chunk.append((rel, stamp))
                except ImageReadError as err:
                    update.skipped.append((rel, _reason(file, str(err))))
                update.warnings += [(rel, note) for note in notes]
            if prepared:
                out = engine.encode_images(torch.stack(prepared))
                rows += [(rel, stamp, v, r) for (rel, stamp), v, r in
                         zip(chunk, out.image_vectors, out.regions, strict=True)]
            bar.update(len(todo[start:start + engine.batch_size]))
    update.embedded = len(rows)
    return rows


def _row_shape(engine: ImageTextInference) -> tuple[int, int]:
    """(R, D): the regions and dimensions of one image's region vectors."""
    gh, gw = engine.model.grid
    return gh * gw, engine.config.model.embed_dim


def _index_from(rows: list, model_id: str, engine: ImageTextInference) -> ImageIndex:
    if not rows:
        regions, dim = _row_shape(engine)
        empty = ImageEmbeddings(torch.empty(0, dim), torch.empty(0, regions, dim))
        return ImageIndex([], [], empty, model_id)
    return ImageIndex([r[0] for r in rows], [r[1] for r in rows],
                      ImageEmbeddings(torch.stack([r[2] for r in rows]), torch.stack([r[3] for r in rows])),
                      model_id)


def check_query(query: str | None) -> str:
    """``query`` when it is UTF-8 text with words; else an ``InferenceError`` that says so."""
    return check_sentence(query, "--query")


def search_images(engine: ImageTextInference, images_dir: str | Path, query: str, top: int = 10,
                  scoring: str = "global", index_path: str | Path | None = None,
                  progress: bool = True, overwrite: bool = False) -> SearchResult:
    """The ``top`` images of ``images_dir`` for ``query``, best first, through the folder's index."""
    check_query(query)
    images_dir = Path(images_dir)
    index, update = update_index(engine, images_dir, index_path, progress, overwrite)
    hits = []
    if index.paths:
        scores = engine.similarity(index.embeddings, [query], scoring)[:, 0]
        best = scores.argsort(descending=True)[:top].tolist()
        hits = [(images_dir / index.paths[i], float(scores[i])) for i in best]
    return SearchResult(hits, update, Path(index_path) if index_path else default_index_path(images_dir),
                        len(index.paths))


def rank_reports(engine: ImageTextInference, image: ImageInput, manifest_root: str | Path, top: int = 10,
                 scoring: str = "global") -> list[tuple[str, float, str]]:
    """The ``top`` reports of a manifest for one image (a path or any ``ImageInput``):
    (study_id, score, text), best first.

    Raises ``ImageReadError`` naming the image when it cannot be read.
    """
    from ..data.schema import load_manifest

    image_side = engine.embed_images([image])  # a bad image fails before the reports are embedded
    manifest = load_manifest(manifest_root)
    texts, ids = manifest["text"], manifest["study_id"]
    scores = engine.similarity(image_side, engine.embed_reports(texts), scoring)[0]
    return [(ids[i], float(scores[i]), texts[i]) for i in scores.argsort(descending=True)[:top].tolist()]


def describe_update(result: SearchResult) -> str:
    """One summary line, then a line for each thing to know: the index, skipped files, reader warnings."""
    u = result.update
    lines = [f"index {printable(str(result.index_path))}: {result.indexed} images ({u.reused} reused, "
             f"{u.embedded} embedded, {u.removed} gone); {len(u.skipped)} unreadable file(s) skipped"]
    if u.damaged:
        lines.append(f"warning: {printable(u.damaged)}; rebuilt it from the images")
    if u.not_kept:
        lines.append(f"warning: index not kept: {printable(u.not_kept)}. The results are complete, but the next "
                     "search embeds every image again; pass --index FILE in a folder you can write to keep it")
    lines += [f"  skipped {printable(path)}: {printable(reason)}" for path, reason in u.skipped]
    if u.skipped:
        lines.append("  (skipped files are left out of the results and tried again on the next search)")
    lines += _grouped_warnings(u.warnings)
    return "\n".join(lines)


def _grouped_warnings(warnings: list[tuple[str, str]]) -> list[str]:
    """One line per distinct reader warning, naming the first file and counting the others."""
    files: dict[str, list[str]] = {}
    for path, note in warnings:
        files.setdefault(note, []).append(path)
    return [f"  warning {printable(paths[0])}" + (f" and {len(paths) - 1} more file(s)" if len(paths) > 1 else "")
            + f": {printable(note)} (used as read)" for note, paths in files.items()]

