"""Skip accounting: one unit on both sides of the fraction, expected exclusions listed but not counted."""

import json

import pytest

from joimternet_lite.data.skips import SkipLog, StudySkipLog, TooManySkipsError


def test_fraction_counts_studies_not_files():
    skips = SkipLog()
    for k in range(3):  # three bad images of one study are one failed study
        skips.add("bad_image", f"s1_{k}.png", "cut", unit="s1")
    skips.add("empty_report", "s2.xml", "no text", unit="s2")
    assert skips.failed_units() == 2
    skips.check(10, 0.2, "list.jsonl", "reports")  # 2 of 10 = 0.2: allowed
    with pytest.raises(TooManySkipsError, match=r"skipped 2 of 10 reports \(bad_image: 3, empty_report: 1\)"):
        skips.check(10, 0.1, "list.jsonl", "reports")


def test_missing_images_are_listed_but_never_counted():
    skips = SkipLog()
    for k in range(6875):  # the partial download of the report: more images than reports
        skips.add("missing_image", f"CXR{k}_IM-1", "no file", unit=str(k // 2))
    skips.check(3955, 0.0, "list.jsonl", "reports")  # no failed file: even 0 allowed passes
    line = skips.report(3955, "list.jsonl", "reports")
    assert line.startswith("skipped 0 of 3955 reports; not counted (expected): missing_image: 6875 in 3438 reports")


def test_training_lists_excluded_studies_apart_from_unreadable_ones(tmp_path):
    skips = StudySkipLog(tmp_path, 100, 0.01, True, excluded=[(f"x{k}", "no frontal image") for k in range(27)])
    skips.add_studies([("s1", "cut.png: file is empty")])  # 1 of 100: allowed, the 27 excluded do not count
    listed = [json.loads(x) for x in (tmp_path / "skipped_samples.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in listed].count("no_frontal_image") == 27 and listed[-1]["kind"] == "unreadable"
    assert skips.summary().startswith("skipped 1 of 100 training studies (unreadable: 1); not counted (expected): "
                                      "no_frontal_image: 27 in 27 training studies")
    with pytest.raises(TooManySkipsError, match="skipped 2 of 100"):
        skips.add_studies([("s2", "cut")])
