"""docs/API.md's example runs as written, against a tiny trained model laid out as `make demo` leaves it."""

import re
import shutil
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "API.md"


def example_code() -> str:
    example = DOC.read_text().split("## Example", 1)[1]
    return re.search(r"```python\n(.*?)```", example, re.S).group(1)


def test_api_example_runs(tiny_run, tmp_path, monkeypatch, capsys):
    run, synth = tiny_run
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "demo").symlink_to(run, target_is_directory=True)
    shutil.copytree(synth, tmp_path / "data" / "synthcxr")
    monkeypatch.chdir(tmp_path)
    exec(compile(example_code(), str(DOC), "exec"), {"__name__": "api_example"})
    printed = capsys.readouterr().out.splitlines()
    assert printed[1] == "['small', 'left', 'pleural', 'effusion'] (4, 4, 4)"
    assert len(printed) == 2 + 3 and all("\t" in line for line in printed[2:])
    assert (tmp_path / "models" / "demo" / "config.json").exists()
    assert (tmp_path / "word_maps.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "data" / "synthcxr" / "images" / ".joimternet-index.safetensors").exists()


def test_every_documented_top_level_name_is_exported():
    import joimternet_lite

    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text().split("## Loading and saving", 1)[1], re.S)
    documented = {m for block in blocks for m in re.findall(r"^([A-Za-z_]\w*)(?:\.\w+)?\(", block, re.M)}
    documented -= {"engine", "model"}  # instances, not names
    assert documented and documented <= set(joimternet_lite.__all__), documented - set(joimternet_lite.__all__)
    for name in joimternet_lite.__all__:
        assert getattr(joimternet_lite, name) is not None
