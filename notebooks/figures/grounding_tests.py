"""Figure for notebook 11: the two tests of a word map whose answer is known. Paired-phrase: on one
image with findings A and B, phrase A's map must put more mass on A than phrase B's map does.
Left/right: the phrase that names the finding's side must put more mass on it than the same phrase
with the side swapped. A map that ignores the words scores 0.5 on both.

Run: .venv/bin/python notebooks/figures/grounding_tests.py
Writes grounding_tests.svg next to this file (byte-stable across re-runs).
"""

from pathlib import Path

import numpy as np
from figure_style import grid_panel_frame, plt, save_svg

OUT = Path(__file__).with_suffix(".svg")
GRID = (4, 4)
A_CELLS = (8, 12)        # finding A, lower left of the grid
B_CELLS = (1, 2)         # finding B, upper middle


def blob(cells, rest=0.02):
    m = np.full(GRID[0] * GRID[1], rest)
    m[list(cells)] = 1.0
    return m / m.sum()


def mirrored(cells):
    return tuple(r * GRID[1] + (GRID[1] - 1 - c) for r, c in (divmod(j, GRID[1]) for j in cells))


def panel(ax, values, title, outline, mass_cells):
    ax.imshow(values.reshape(GRID), cmap="viridis", vmin=0, vmax=0.5)
    grid_panel_frame(ax, outline, GRID, title)
    ax.set_xlabel(f"mass on the red cells: {values[list(mass_cells)].sum():.2f}", fontsize=8)


def main(out: Path = OUT) -> None:
    fig, axes = plt.subplots(1, 4, figsize=(10, 3.0))
    panel(axes[0], blob(A_CELLS), "paired-phrase: phrase A alone\n'small left pleural effusion'", A_CELLS, A_CELLS)
    panel(axes[1], blob(B_CELLS), "phrase B alone\n'widened mediastinum'", A_CELLS, A_CELLS)
    panel(axes[2], blob(A_CELLS), "left/right: the true phrase\n'small left pleural effusion'", A_CELLS, A_CELLS)
    panel(axes[3], blob(mirrored(A_CELLS)), "side swapped\n'small right pleural effusion'", A_CELLS, A_CELLS)
    fig.text(0.03, -0.2, "Paired-phrase: 1 when A's map puts more mass on A's cells (red) than B's map does.\n"
             "Left/right: 1 when the true phrase puts more mass on the finding than the swapped phrase.\n"
             "Both: 0.5 on a tie, averaged over findings. A map that ignores the words gives both phrases the "
             "same map, so it scores exactly 0.5 (chance).", fontsize=8)
    save_svg(fig, out, bbox_inches="tight")


if __name__ == "__main__":
    main()
