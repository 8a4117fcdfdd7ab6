"""The one plotting helper: line plots of per-epoch logs, saved as PDF and PNG."""
import numpy as np

MARKERS_UP_TO = 30  # points a series may show and still get a dot at each; longer ones are a plain line


def draw_series(ax, x, y, label, color):
    """One series on `ax`: a line, a dot at every point when it shows few, and a dot at any point
    with no shown neighbour (NaN on both sides), which a line alone does not draw: a set tested
    only at the end of a long run."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    shown = np.isfinite(y)
    few = shown.sum() <= MARKERS_UP_TO
    ax.plot(x, y, label=label, color=color, marker='o' if few else None, markersize=3)
    alone = shown & ~np.r_[False, shown[:-1]] & ~np.r_[shown[1:], False]
    if not few and alone.any():
        ax.plot(x[alone], y[alone], linestyle='none', marker='o', markersize=3, color=color)


def save_plot(stem, panels, title, xlabel='Epochs'):
    """<stem>.pdf and <stem>.png: one axis per panel, stacked, sharing x.
    panels: [(ylabel, {label: (x, y)}, {label: value of a dashed reference line})]."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(panels), 1, sharex=True, squeeze=False, figsize=(7.5, 1.2 + 2.6 * len(panels)))
    for ax, (ylabel, lines, refs) in zip(axes[:, 0], panels):
        for i, (label, (x, y)) in enumerate(lines.items()):
            draw_series(ax, x, y, label, f'C{i}')
        for i, (label, value) in enumerate(refs.items()):
            ax.axhline(value, linestyle='--', linewidth=1, color=f'C{i}', label=label)
        ax.set_ylabel(ylabel)
        ax.grid(True)
        ax.legend(fontsize='small', loc='center left', bbox_to_anchor=(1.01, 0.5))  # beside the curves
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel(xlabel)
    fig.tight_layout()
    for ext in ('pdf', 'png'):
        fig.savefig(f'{stem}.{ext}')
    plt.close(fig)
