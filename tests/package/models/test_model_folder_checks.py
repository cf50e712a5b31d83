"""A model folder is checked before it is built (joimternet_lite.model_check, hub): config.json's sizes
against the weights' safetensors header and against sane maxima, damaged weights and damaged JSON,
each one ``error:`` line naming the file (and the key), exit code 1, and no model built for real."""

import json
import re
import shutil

import pytest
import torch
from cli_output import one_error_line
from damaged_files import DAMAGE_REASONS, damaged_weights
from test_hub import saved  # noqa: F401 - a fixture

from joimternet_lite import JoImTeRNet
from joimternet_lite.cli import main
from joimternet_lite.errors import EXIT_USER_ERROR, is_expected
from joimternet_lite.models import joimternet as joimternet_module


@pytest.fixture
def builds(monkeypatch):
    """The default device of every model build: 'meta' for a shape-only build, 'cpu' for a real one."""
    devices, real = [], joimternet_module.model_for

    def recording(*args, **kwargs):
        devices.append(torch.get_default_device().type)
        return real(*args, **kwargs)

    monkeypatch.setattr(joimternet_module, "model_for", recording)
    return devices


def _copy(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / folder.name)


def _set(folder, key: str, value):
    meta = json.loads((folder / "config.json").read_text())
    *sections, last = key.split(".")
    node = meta["config"]
    for s in sections:
        node = node[s]
    node[last] = value
    (folder / "config.json").write_text(json.dumps(meta))


def _search(model, tmp_path, capsys) -> str:
    """``search --model model``'s one error line (it loads the model before it lists the images)."""
    assert main(["search", "--model", str(model), "--images", str(tmp_path), "--query", "effusion"]) == EXIT_USER_ERROR
    return one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(("key", "value", "says"), [
    ("model.embed_dim", 10**6, r"model\.embed_dim=1000000 is larger than any model this package builds \(at most 16384\)"),
    ("model.embed_dim", 10**9, r"model\.embed_dim=1000000000 is larger than any model"),
    ("model.text.layers", 10**6, r"model\.text\.layers=1000000 is larger than any model .*at most 128"),
])
def test_an_absurd_size_is_refused_by_key_before_any_build(saved, tmp_path, builds, key, value, says):  # noqa: F811
    folder = _copy(saved, tmp_path)
    _set(folder, key, value)
    with pytest.raises(ValueError, match=rf"{folder / 'config.json'}: {says}") as err:
        JoImTeRNet.from_pretrained(folder)
    assert is_expected(err.value) and builds == []


@pytest.mark.parametrize(("key", "value", "says"), [
    ("model.embed_dim", 64, r"model\.embed_dim is 64, but the weights in .*model\.safetensors were saved with 32 "
                            r"\(image_encoder\.global_head\.bias: F32 \[32\] in the file, float \[64\] from the config"),
    ("model.text.layers", 3, r"model\.text\.layers is 3, but the weights in .*model\.safetensors were saved with 1 "
                             r"\(text_encoder\.bert\.encoder\.layer\.1\..* is in the model the config describes, "
                             r"not in the file"),
    ("model.image.widths", [4, 8, 8, 24, 16, 32, 32], r"model\.image\.widths\[3\] is 24, but .* saved with 16"),
])
def test_a_size_the_weights_disagree_with_is_named_with_the_saved_value(saved, tmp_path, builds, key, value, says):  # noqa: F811
    folder = _copy(saved, tmp_path)
    _set(folder, key, value)
    with pytest.raises(ValueError, match=rf"{folder / 'config.json'}: {says}.*Set it back to") as err:
        JoImTeRNet.from_pretrained(folder)
    assert is_expected(err.value)
    assert builds and set(builds) == {"meta"}  # shapes only: nothing was allocated for the wrong model


def test_a_tokenizer_of_another_vocabulary_is_named(saved, tmp_path, builds):  # noqa: F811
    folder = _copy(saved, tmp_path)
    tok = json.loads((folder / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    vocab.update({f"extra{i}": len(vocab) + i for i in range(5)})
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(ValueError, match=rf"{folder / 'tokenizer.json'}: the tokenizer has (\d+) entries, but the "
                                         r"weights in .* were saved with a vocabulary of (\d+)"):
        JoImTeRNet.from_pretrained(folder)
    assert set(builds) == {"meta"}


def test_a_checkpoint_whose_recorded_config_disagrees_is_refused_before_the_build(tiny_run, tmp_path, builds):
    run = _copy(tiny_run[0], tmp_path)
    state_file = run / "checkpoints" / "step_000002" / "trainer.json"
    state = json.loads(state_file.read_text())
    state["config"]["model"]["embed_dim"] = 64
    state_file.write_text(json.dumps(state))
    with pytest.raises(ValueError, match=rf"{state_file}: model\.embed_dim is 64, .* saved with 32"):
        JoImTeRNet.from_pretrained(state_file.parent)
    assert set(builds) == {"meta"}


@pytest.mark.parametrize("kind", DAMAGE_REASONS)
def test_damaged_weights_end_in_one_error_line(saved, tmp_path, capsys, kind):  # noqa: F811
    folder = _copy(saved, tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(damaged_weights(weights.read_bytes(), kind))
    line = _search(folder, tmp_path, capsys)
    assert line.startswith(f"error: {weights}: not a whole safetensors file: ")
    assert re.search(DAMAGE_REASONS[kind], line)


@pytest.mark.parametrize(("content", "says"), [
    (b'{"library": "joimternet_lite", ', r"not valid JSON \(Expecting property name"),
    (b'{"library": "joimternet_lite", "name": "d\xe9mo"}', r"not UTF-8 text \(byte 0xe9 at offset 41\)"),
])
@pytest.mark.parametrize("name", ["config.json", "results.json"])
def test_damaged_or_non_utf8_json_ends_in_one_error_line_naming_it(saved, tiny_run, tmp_path, capsys,  # noqa: F811
                                                                   name, content, says):
    folder = _copy(saved if name == "config.json" else tiny_run[0], tmp_path)  # results.json: a run's
    (folder / name).write_bytes(content)
    line = _search(folder, tmp_path, capsys)
    assert re.match(rf"error: {folder / name}: {says}", line), line


def test_a_file_given_as_the_model_says_it_is_a_file(saved, tmp_path, capsys):  # noqa: F811
    line = _search(saved / "model.safetensors", tmp_path, capsys)
    assert line.startswith(f"error: {saved / 'model.safetensors'}: a file, not a model folder. Pass a folder")
