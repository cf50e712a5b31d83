"""Figure for notebook 08: the order of one optimizer step with mixed precision. Forward under
autocast, the loss in fp32, zero_grad, backward through the GradScaler, unscale, clip each tower,
then the scaler's step and update.

Run: .venv/bin/python notebooks/figures/train_step_order.py
Writes train_step_order.svg next to this file (byte-stable across re-runs).
"""

from pathlib import Path

from figure_style import arrow, box, finish_diagram, plt

OUT = Path(__file__).with_suffix(".svg")

STEPS = [("1. forward\nunder autocast", "matmuls in bf16/fp16\n(fp32 on a CPU)", "#cfe2ff"),
         ("2. loss\nin fp32", "outputs cast up:\nsoftmaxes need it", "#cfe2ff"),
         ("3. zero_grad,\nscaler.scale(loss)\n.backward()", "fp16: loss x s so\nsmall gradients live", "#fff1c2"),
         ("4. scaler\n.unscale_()", "gradients / s:\ntrue sizes again", "#fff1c2"),
         ("5. clip each\ntower to 1.5", "after unscaling, so\n1.5 is the true norm", "#ffd6d6"),
         ("6. scaler.step(),\nscaler.update()", "skips the step if a\ngradient is Inf/NaN", "#d7f5d7")]


def main(out: Path = OUT) -> None:
    fig, ax = plt.subplots(figsize=(11, 2.6))
    width, gap = 1.75, 0.35
    for k, (title, note, colour) in enumerate(STEPS):
        x = k * (width + gap)
        box(ax, x, 0.9, width, 1.0, title, colour, fontsize=8)
        ax.text(x + width / 2, 0.75, note, ha="center", va="top", fontsize=7, color="0.25")
        if k:
            arrow(ax, (x - gap, 1.4), (x, 1.4))
    ax.text(0.0, 2.15, "one optimizer step; the order matters (outside fp16 the scaler is off: 3 is a plain backward, 4 "
            "does nothing, 6 is a plain step)", fontsize=8)
    finish_diagram(fig, ax, (-0.1, 6 * (width + gap)), (-0.1, 2.4), out)


if __name__ == "__main__":
    main()
