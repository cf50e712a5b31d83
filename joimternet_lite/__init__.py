"""JoImTeRNet-lite: chest X-ray / report pre-training with global and region-word matching.

The public API used by the notebooks and by other projects:

- :func:`global_similarity` and :func:`local_similarity` (``joimternet_lite.models.similarity``);
- ``joimternet_lite.evaluate.retrieval_metrics``;
- the command line, ``python -m joimternet_lite --help``.
"""

from .models.similarity import global_similarity as global_similarity
from .models.similarity import local_similarity as local_similarity

__version__ = "0.1.0"
