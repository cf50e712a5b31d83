"""Reliability and security (issue 9): the index of every bad-input, interruption and security
case, each mapped to the tests that assert its message or skip count, plus the README's
troubleshooting table checked against the messages the package really raises.

The cases are tested where the code lives (tests/test_images.py, test_dicom.py, ...); this file
makes the whole list visible in one place and fails when a case loses its test.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    # bad input
    "truncated or corrupt PNG/JPEG": ["test_images.py::test_truncated_image_names_file_and_fix",
                                      "test_dataset.py::test_corrupt_image_is_skipped_with_its_name"],
    "zero-byte file, missing image": ["test_images.py::test_garbage_zero_byte_and_missing"],
    "missing or unreadable image met in training is a counted skip":
        ["test_train.py::test_unreadable_samples_are_counted_once_listed_and_summarised",
         "test_train.py::test_more_skips_than_the_threshold_fail_the_run",
         "test_dataset.py::test_study_without_frontal_image_is_a_counted_skip"],
    "DICOM without pixel data": ["test_dicom.py::test_no_pixel_data"],
    "DICOM unsupported transfer syntax names the plugin": ["test_dicom.py::test_unsupported_syntax_names_plugin",
                                                          "test_dicom.py::test_unknown_syntax"],
    "DICOM odd bit depth": ["test_dicom.py::test_odd_bit_depth"],
    "report empty, without sections, non-UTF-8, 10,000 words":
        ["test_openi.py::test_overlong_and_bad_reports_are_counted_skips_and_threshold_fails",
         "test_openi.py::test_malformed_xml_names_the_file"],
    "label CSV with blanks, -1, unknown columns":
        ["test_mimic.py::test_label_csv_blanks_uncertain_unknown_columns_and_bad_values"],
    "manifest from an older schema version": ["test_dataset.py::test_old_schema_manifest_is_refused_with_the_fix"],
    "config with an unknown key or a wrong type":
        ["test_config.py::test_unknown_key_in_a_yaml_file_names_the_file_and_the_accepted_keys",
         "test_config.py::test_wrong_type_in_a_yaml_file_is_refused",
         "test_config.py::test_bad_overrides_name_the_key"],
    "tokenizer or checkpoint from another vocabulary or model size":
        ["test_checkpoint.py::test_vocabulary_mismatch_names_the_file_and_the_fix",
         "test_checkpoint.py::test_model_size_mismatch_is_refused",
         "test_checkpoint.py::test_recorded_vocabulary_size_is_checked_before_the_tensors"],
    "skips summarised; a threshold turns them into a failure":
        ["test_cache.py::test_bad_images_are_counted_skips_and_threshold", "test_mimic.py::test_skip_threshold_fails",
         "test_openi.py::test_cli_prepare_prints_summary_and_fails_on_threshold"],
    "raw files never modified": ["test_openi.py::test_prepare_nlm_layout_counts_links_and_leaves_raw_untouched",
                                 "test_pipeline.py::test_openi_preset_trains_on_a_prepared_openi_manifest_with_the_cache"],
    # interrupted work
    "SIGKILL mid-step or mid-checkpoint, resume gives the same weights":
        ["test_train.py::test_sigkill_while_writing_a_checkpoint_then_resume_gives_the_same_weights",
         "test_train.py::test_sigkill_at_a_random_moment_then_resume_gives_the_same_weights",
         "test_train.py::test_resumed_run_ends_with_the_same_weights_and_logs"],
    "a half-written checkpoint is never loaded": ["test_checkpoint.py::test_half_written_checkpoint_is_never_returned_or_loaded",
                                                  "test_checkpoint.py::test_truncated_or_modified_tensor_file_is_refused"],
    "cache and downloads resume and verify what they reuse":
        ["test_cache.py::test_resume_changed_source_and_corrupt_row_are_redone",
         "test_download.py::test_resume_after_cut_connection_uses_range",
         "test_download.py::test_resume_of_a_partial_file_left_by_a_killed_run",
         "test_download.py::test_download_verifies_and_skips_when_present"],
    "NaN/Inf stops after saving, or skips and counts":
        ["test_train.py::test_nan_loss_stops_with_step_ids_terms_after_saving_the_last_good_state",
         "test_train.py::test_nan_policy_skip_counts_the_skipped_steps_and_finishes",
         "test_train.py::test_too_many_nan_skips_stop_the_run"],
    # security
    "checkpoints are safetensors + JSON, nothing unpickled": ["test_checkpoint.py::test_written_files_are_safetensors_and_json",
                                                              "test_checkpoint.py::test_loading_never_unpickles"],
    "hostile archives (absolute, .., links, devices)": ["test_download.py::test_hostile_tar_members_are_refused_before_writing"],
    "credentials from env/netrc only, never written": ["test_download.py::test_physionet_credentials_from_env_or_netrc",
                                                       "test_pipeline.py::test_no_credential_reaches_logs_configs_or_reports"],
    "checksum mismatch keeps nothing in place": ["test_download.py::test_checksum_mismatch_keeps_nothing_in_place"],
}


def _test_names(module: str) -> set[str]:
    tree = ast.parse((ROOT / "tests" / module).read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_case_has_its_tests(case):
    for node in CASES[case]:
        module, name = node.split("::")
        assert name in _test_names(module), f"{case}: {node} is gone; the case lost its test"


def _troubleshooting_snippets() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    return [m.group(1) for m in re.finditer(r"^\| `([^`]+)`", section, flags=re.MULTILINE)]


def test_readme_troubleshooting_quotes_messages_the_package_raises():
    snippets = _troubleshooting_snippets()
    assert len(snippets) >= 15
    source = "\n".join(p.read_text() for p in (ROOT / "joimternet_lite").rglob("*.py"))
    source = re.sub(r'"\s*\n\s*f?"', "", source)  # join implicitly concatenated string literals
    missing = [s for s in snippets if s.split(" (")[0].replace("expected int, got", "expected {tp.__name__}, got")
               not in source]
    assert not missing, f"README troubleshooting quotes messages the package never raises: {missing}"
