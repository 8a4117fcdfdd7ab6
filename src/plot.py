"""The one plotting helper: line plots of per-epoch logs, saved as PDF and PNG."""


def save_plot(stem, panels, title, xlabel='Epochs'):
    """<stem>.pdf and <stem>.png: one axis per panel, stacked, sharing x.
    panels: [(ylabel, {label: (x, y)}, {label: value of a dashed reference line})]."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(panels), 1, sharex=True, squeeze=False, figsize=(7.5, 1.2 + 2.6 * len(panels)))
    for ax, (ylabel, lines, refs) in zip(axes[:, 0], panels):
        for i, (label, (x, y)) in enumerate(lines.items()):
            ax.plot(x, y, label=label, color=f'C{i}', marker='o' if len(x) <= 30 else None, markersize=3)
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
