"""JoImTeRNet-lite: chest X-ray / report pre-training with global and region-word matching.

The public API (typed signatures and a runnable example in docs/API.md):

- :class:`JoImTeRNet` with ``from_pretrained(path)`` / ``save_pretrained(dir)`` / ``push_to_hub``
  (``joimternet_lite.hub``), ``get_image_features`` / ``get_text_features``, and ``forward`` returning
  a typed :class:`ModelOutput`; :class:`PretrainedError` for a folder that is not a loadable model;
- :class:`Similarity` (``model.similarity``): the one scoring route, ``scores`` (global, local,
  combined) and ``maps``; :class:`ImageEmbeddings`, :class:`ReportEmbeddings` and
  :class:`DatasetEmbeddings`, the typed embeddings it scores;
- :class:`ImageTextInference`: ``embed_images``, ``embed_reports``, ``similarity``, ``word_maps``,
  ``plot_word_maps`` (``joimternet_lite.inference``); :class:`InferenceError`;
- :class:`ImageIndex` and :func:`search_images`: an on-disk embedding index of an image folder
  (``joimternet_lite.commands.search``); :class:`SearchError`;
- :func:`global_similarity`, :func:`local_similarity`, :func:`word_region_maps`,
  :func:`spread_to_words` (``joimternet_lite.models.similarity``);
- ``joimternet_lite.evaluate.retrieval_metrics``; :func:`region_owners`, who wins each region in the
  alpha attention (``joimternet_lite.evaluate.grounding``);
- the command line, ``python -m joimternet_lite --help``.

Names are imported on first use, so ``python -m joimternet_lite`` starts without torch's and
transformers' import time.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "JoImTeRNet": "models.joimternet",
    "PretrainedError": "hub",
    "ImageTextInference": "inference",
    "InferenceError": "inference",
    "ImageEmbeddings": "models.outputs",
    "ReportEmbeddings": "models.outputs",
    "ModelOutput": "models.outputs",
    "DatasetEmbeddings": "evaluate.embed",
    "embed_dataset": "evaluate.embed",
    "Similarity": "models.similarity",
    "WordMaps": "inference",
    "ImageIndex": "commands.search",
    "SearchError": "commands.search",
    "search_images": "commands.search",
    "update_index": "commands.search",
    "rank_reports": "commands.search",
    "global_similarity": "models.similarity",
    "local_similarity": "models.similarity",
    "word_region_maps": "models.similarity",
    "spread_to_words": "models.similarity",
    "region_owners": "evaluate.grounding",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'joimternet_lite' has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
