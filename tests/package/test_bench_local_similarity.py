"""The local-similarity benchmark: its CPU memory measure and its chunk budget (bench/local_similarity.py)."""

import importlib.util
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench" / "local_similarity.py"
CPU = torch.device("cpu")


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_local_similarity", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def test_peak_memory_reports_a_known_allocation_exactly():
    with bench.PeakMemory(CPU) as mem:
        kept = torch.empty(1000, dtype=torch.float32)
    assert mem.peak == 4000 == kept.nbytes


def test_peak_memory_keeps_the_peak_after_a_free_and_ignores_older_tensors():
    older = torch.empty(5000, dtype=torch.float32)
    with bench.PeakMemory(CPU) as mem:
        del older                                       # allocated before: must not lower the count
        first = torch.empty(300, 10, dtype=torch.float64)   # 24000 bytes
        del first
        second = torch.empty(100, dtype=torch.int64)        # 800 bytes
    assert mem.peak == 24000
    assert second.nbytes == 800


def test_chunk_budget_counts_each_term_by_hand():
    # B=4, c=2, L=3, R=5, D=7: block phase 7*2*5*2*3 + 2*25 + 2*2*3 + 2*2*3*7 + 2*5*7 = 420+50+12+84+70
    # = 636, plus B*(R+L)*D = 224 and B*B = 16: 876 floats. Scatter: 4*7*max(14, 13) + 70 + 16 = 478.
    # Loss: 80. Bookkeeping: 4 blocks * (2 + 2) * 8 + 4 * 8 + 2*2*3 = 128 + 32 + 12 = 172 bytes.
    assert bench.chunk_budget_bytes(4, 2, 3, 5, 7) == 4 * 876 + 172


def test_chunk_budget_grows_as_its_block_term_with_words_and_chunk():
    def budget(words=64, chunk=32):
        return bench.chunk_budget_bytes(512, chunk, words, 64, 128)

    # one more word: 7 c^2 R + c^2 + 2 c D + B D floats, and 2 c bool bytes
    assert budget(words=65) - budget() == 4 * (7 * 32 * 32 * 64 + 32 * 32 + 2 * 32 * 128 + 512 * 128) + 2 * 32
    # doubling the chunk quadruples the seven (c, R, c, L) tensors, not the O(B) gradients
    assert 3 < budget(chunk=64) / budget() < 4


def test_chunk_budget_is_far_below_the_context_tensor_at_b512():
    assert bench.chunk_budget_bytes(512, 32, 64, 64, 128) < bench.context_tensor_bytes(512, 64, 128) / 50
    assert bench.context_tensor_bytes(512, 64, 128) == 8 * 2**30


def test_budget_check_one_block_is_within_budget(capsys):
    assert bench.budget_check(16, 8, 8, 16, 16, CPU)
    assert "within" in capsys.readouterr().out


def test_budget_check_many_recomputed_blocks_is_within_budget():
    assert bench.budget_check(64, 8, 8, 8, 8, CPU)


def test_retrieval_timing_scores_the_whole_matrix_and_agrees_with_the_loop():
    assert bench.retrieval_seconds(40, words=6, regions=4, dim=8, device=CPU, chunk_size=16) > 0
    r, w, lengths = bench.make_inputs(40, 6, 4, 8, CPU)
    with torch.no_grad():   # what retrieval_seconds times is the score the loop reference computes
        fast = bench.local_similarity(r, w, lengths, chunk_size=16)
    torch.testing.assert_close(fast, bench.per_caption_loop(r, w, lengths), rtol=1e-4, atol=1e-5)


def test_relative_differences_are_small_for_the_exact_fast_path_and_see_a_wrong_one():
    inputs = bench.make_inputs(12, 7, 5, 8, CPU)
    score_rel, grad_rel = bench.relative_differences(inputs, bench.per_caption_loop, bench.fast(4))
    assert score_rel < 1e-5 and grad_rel < 1e-4
    off_by_one_percent = lambda r, w, lengths: 1.01 * bench.per_caption_loop(r, w, lengths)  # noqa: E731
    score_rel, grad_rel = bench.relative_differences(inputs, bench.per_caption_loop, off_by_one_percent)
    assert score_rel == pytest.approx(0.01, rel=1e-3) and grad_rel > 1e-3
