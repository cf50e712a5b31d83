"""SynthCXR: procedurally drawn frontal chest radiographs with reports written from the same truth.

Taught in notebook 01 (the generator) and notebook 12 (the real layouts). Images are square,
``image_size`` px (128-1024); every study is a pure function of ``(seed, index, image_size,
difficulty)``. The package, one job per module:

- :mod:`.primitives`: the pixel grid and soft shapes every drawing is made of;
- :mod:`.anatomy`: the patient and the normal chest (lungs, domes, heart, mediastinum, bones, vessels);
- :mod:`.findings`: the table of finding types (label, drawer, phrases), :class:`Difficulty`, sampling;
- :mod:`.reports`: FINDINGS and IMPRESSION text, phrase and head-word spans, CheXpert labels;
- :mod:`.study`: one study in memory (:func:`generate_study`);
- :mod:`.writer`: splits, the PNG files and the manifest on disk (:func:`generate_synthcxr`);
- :mod:`.lateral`: the lateral films some studies get in the real layouts;
- :mod:`.real_layouts`: SynthCXR written in the OpenI and MIMIC-CXR on-disk layouts, the fixtures
  the real-data parsers are tested on.
"""

from .findings import DEFAULT_VISIBILITY, DEVICE_TYPES, FINDING_TYPES, Difficulty
from .lateral import has_lateral, render_lateral
from .primitives import MAX_SIZE, MIN_SIZE
from .real_layouts import (
    mesh_terms,
    mimic_ids,
    mimic_report,
    openi_report_xml,
    write_mimic_layout,
    write_openi_layout,
)
from .reports import PATHOLOGY_LABELS
from .study import SynthStudy, generate_study, study_id
from .writer import (
    DEFAULT_SPLIT_FRACTIONS,
    DEMO_NUM_STUDIES,
    DEMO_SEED,
    SynthCXRFolderError,
    assign_splits,
    findings_gt_features,
    generate_synthcxr,
    split_file_payload,
    write_split_file,
)

__all__ = [
    "DEFAULT_SPLIT_FRACTIONS", "DEFAULT_VISIBILITY", "DEMO_NUM_STUDIES", "DEMO_SEED", "DEVICE_TYPES",
    "FINDING_TYPES", "MAX_SIZE", "MIN_SIZE", "PATHOLOGY_LABELS", "Difficulty", "SynthCXRFolderError", "SynthStudy", "assign_splits",
    "findings_gt_features", "generate_study", "generate_synthcxr", "has_lateral", "mesh_terms", "mimic_ids",
    "mimic_report", "openi_report_xml", "render_lateral", "split_file_payload", "study_id", "write_mimic_layout",
    "write_openi_layout", "write_split_file",
]
