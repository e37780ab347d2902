"""The plots of `magimac bench`: two PNG files (matplotlib) and two text plots (plotext),
quality and speed against the weights' size in memory (decimal GB)."""

from __future__ import annotations

from pathlib import Path

from magimac.core.units import GB
from magimac.bench.measure import Row


def png_plots(out: Path, rows: list[Row]) -> list[Path]:
    """``quality_vs_size.png`` (KL mean, log scale, and perplexity) and ``speed_vs_size.png``
    (decode and prefill tokens/s) against size in memory (GB)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r.memory_bytes / GB for r in rows]
    labels = [r.label for r in rows]

    def scatter(ax, ys, ylabel, log=False):
        pts = [(a, b, t) for a, b, t in zip(x, ys, labels) if b is not None and (b > 0 or not log)]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o", linestyle="none")
        for a, b, t in pts:
            ax.annotate(t, (a, b), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel("weights in memory (GB)")
        ax.set_ylabel(ylabel)
        if log and pts:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)

    files = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    scatter(axes[0], [r.quality["kl_mean"] if r.quality else None for r in rows],
            "mean KL divergence vs reference (nats/token)", log=True)
    scatter(axes[1], [r.quality["ppl"] if r.quality else None for r in rows], "perplexity")
    fig.suptitle("Quality against size")
    fig.tight_layout()
    files.append(out / "quality_vs_size.png")
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    scatter(axes[0], [r.decode_tps for r in rows], "decode tokens/s")
    n = rows[0].speed[-1]["prompt_tokens"] if rows else 0
    scatter(axes[1], [r.speed[-1]["prefill_tps"] for r in rows], f"prefill tokens/s ({n}-token prompt)")
    fig.suptitle("Speed against size")
    fig.tight_layout()
    files.append(out / "speed_vs_size.png")
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)
    return files


def terminal_plots(rows: list[Row]) -> str:
    """Two plotext plots (KL mean and decode tokens/s against size) as plain text; each point
    is drawn as its level's label."""
    import plotext

    fig = plotext.figure
    text = []
    for title, ys in (
        ("mean KL divergence (nats/token) vs weights in memory (GB)",
         [r.quality["kl_mean"] if r.quality else 0.0 for r in rows]),
        ("decode tokens/s vs weights in memory (GB)", [r.decode_tps for r in rows]),
    ):
        fig.clear()
        fig.plot_size(72, 14)
        xs = [r.memory_bytes / GB for r in rows]
        fig.draw(fig.signal(xs, ys, marker="o"))
        mid = (min(xs) + max(xs)) / 2
        for a, b, r in zip(xs, ys, rows):
            fig.draw(fig.text(a, b, r.label, alignment="right" if a > mid else "left"))
        fig.title(title)
        text.append(plotext.uncolorize(str(fig.build())))
    return "\n".join(text)
