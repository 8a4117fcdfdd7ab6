"""Tables of PSNR / SSIM, shared by evaluate.py, the Evaluator and anyone
scoring results: ranks and marks (best in bold, second underlined), the
Markdown and LaTeX (booktabs) tables of one set or of several sets, scales and
methods (tables()), srlab's results.json as their input (from_run_results), and
the table a test run prints (run_table)."""
import math


DIGITS = {'psnr': 2, 'ssim': 4}


def number(value):
    """A mean or per-image value as a float: None (inf PSNR as JSON stores it) is inf."""
    return math.inf if value is None else float(value)


def dense_ranks(values, key):
    """{name: rank} of the printed values (DIGITS[key] decimals): dense, 1 = best, inf first."""
    shown = {n: round(number(v), DIGITS[key]) for n, v in values.items()}
    levels = sorted(set(shown.values()), reverse=True)
    return {n: levels.index(v) + 1 for n, v in shown.items()}


def add_ranks(methods):
    """rank[key] per method: dense rank of the printed mean, 1 = best (inf first)."""
    for key in DIGITS:
        for n, r in dense_ranks({n: m['mean'][key] for n, m in methods.items()}, key).items():
            methods[n].setdefault('rank', {})[key] = r
    return methods


def mark(text, rank, worst, latex):
    """Best in bold; second best underlined (LaTeX) only when a method ranks below it,
    so never with two methods, where it would just mark the worse one."""
    if rank == 1:
        return ('\\textbf{%s}' if latex else '**%s**') % text
    if rank == 2 and worst >= 3 and latex:
        return '\\underline{%s}' % text
    return text


def format_table(result):
    width = max([len(s) for s in result['images']] + [4])
    lines = ['%-*s  %8s  %6s' % (width, 'image', 'PSNR', 'SSIM')]
    for stem, v in result['images'].items():
        lines.append('%-*s  %8.2f  %6.4f' % (width, stem, v['psnr'], v['ssim']))
    m = result['mean']
    lines.append('%-*s  %8.2f  %6.4f' % (width, 'mean', m['psnr'], m['ssim']))
    return '\n'.join(lines)


def fmt(value, key, latex=False):
    if math.isinf(value):
        return '$\\infty$' if latex else 'inf'
    return '%.*f' % (DIGITS[key], value)


def markdown_tables(result):
    """Means (rows = methods, best in bold) and the per-image table, as Markdown."""
    methods = result['methods']
    lines = ['| Method | PSNR (dB) | SSIM |', '|:--|--:|--:|']
    for name, m in methods.items():
        cells = [fmt(m['mean'][k], k) for k in DIGITS]
        cells = ['**%s**' % c if m['rank'][k] == 1 else c for c, k in zip(cells, DIGITS)]
        lines.append('| %s | %s |' % (name, ' | '.join(cells)))
    lines += ['', '| Image | %s |' % ' | '.join(methods),
              '|:--|%s' % ('--:|' * len(methods))]
    stems = list(next(iter(methods.values()))['images'])
    for stem in stems + ['mean']:
        cells = [m['mean'] if stem == 'mean' else m['images'][stem] for m in methods.values()]
        lines.append('| %s | %s |' % (stem, ' | '.join(
            '%s / %s' % (fmt(c['psnr'], 'psnr'), fmt(c['ssim'], 'ssim')) for c in cells)))
    return '\n'.join(lines) + '\n'


LATEX_SPECIAL = {'\\': '\\textbackslash{}', '~': '\\textasciitilde{}', '^': '\\textasciicircum{}',
                 '&': '\\&', '%': '\\%', '$': '\\$', '#': '\\#', '_': '\\_', '{': '\\{', '}': '\\}'}


def latex_escape(text):
    return ''.join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def latex_table(result):
    """booktabs table of the means: per column best in bold, second underlined (see mark())."""
    methods = result['methods']
    worst = {k: max(m['rank'][k] for m in methods.values()) for k in DIGITS}
    lines = ['\\begin{tabular}{lcc}', '\\toprule',
             'Method & PSNR (dB) & SSIM \\\\', '\\midrule']
    for name, m in methods.items():
        cells = [mark(fmt(m['mean'][k], k, latex=True), m['rank'][k], worst[k], True) for k in DIGITS]
        lines.append('%s & %s \\\\' % (latex_escape(name), ' & '.join(cells)))
    lines += ['\\bottomrule', '\\end{tabular}']
    return '\n'.join(lines) + '\n'


def marked(values, name, key, latex):
    """values[name] ({method: value}) printed and marked among the values; '-' when absent."""
    if name not in values:
        return '-'
    ranks = dense_ranks(values, key)
    return mark(fmt(number(values[name]), key, latex), ranks[name], max(ranks.values()), latex)


def cell_pair(cells, name, latex, stem=None):
    """[PSNR, SSIM] of method `name` in cells ({method: result}): its means, or image `stem`'s."""
    pick = (lambda r: r.get('mean')) if stem is None else (lambda r: r.get('images', {}).get(stem))
    values = {n: pick(r) for n, r in cells.items() if pick(r) is not None}
    return [marked({n: v[k] for n, v in values.items()}, name, k, latex) for k in DIGITS]


def scale_keys(results):
    """The scales of results ({set: {scale: ...}}), in order of appearance."""
    return list(dict.fromkeys(s for cells in results.values() for s in cells))


def latex_head(top_lead, lead, groups):
    """booktabs head: group names over PSNR/SSIM pairs with \\cmidrule, then the column names."""
    k = len(lead)
    rules = ' '.join('\\cmidrule(lr){%d-%d}' % (k + 2 * i + 1, k + 2 * i + 2) for i in range(len(groups)))
    return ['\\begin{tabular}{%s}' % ('l' * k + 'cc' * len(groups)), '\\toprule',
            ' & '.join(top_lead + ['\\multicolumn{2}{c}{%s}' % latex_escape(g) for g in groups]) + ' \\\\',
            rules, ' & '.join(lead + ['PSNR & SSIM'] * len(groups)) + ' \\\\', '\\midrule']


def grid_markdown(results, order):
    """Rows = methods grouped by scale, one column per set, cells PSNR / SSIM (best in bold)."""
    sets = list(results)
    lines = ['| Method | Scale | %s |' % ' | '.join('%s PSNR / SSIM' % s for s in sets),
             '|:--|:--|%s' % ('--:|' * len(sets))]
    for scale in scale_keys(results):
        for name in order:
            cells = [cell_pair(results[s].get(scale, {}), name, False) for s in sets]
            if any(c != ['-', '-'] for c in cells):
                lines.append('| %s | x%s | %s |' % (name, scale, ' | '.join(' / '.join(c) for c in cells)))
    return '\n'.join(lines) + '\n'


def grid_latex(results, order):
    """booktabs: rows = methods grouped by scale (\\midrule between), sets as PSNR/SSIM column groups."""
    sets = list(results)
    lines = latex_head(['', ''], ['Method', 'Scale'], sets)
    for i, scale in enumerate(scale_keys(results)):
        lines += ['\\midrule'] if i else []
        for name in order:
            cells = [cell_pair(results[s].get(scale, {}), name, True) for s in sets]
            if any(c != ['-', '-'] for c in cells):
                lines.append('%s & $\\times$%s & %s \\\\' % (latex_escape(name), scale,
                                                               ' & '.join(v for c in cells for v in c)))
    return '\n'.join(lines + ['\\bottomrule', '\\end{tabular}']) + '\n'


def per_image_cells(results, order):
    """[(set, scale, {method: result}, stems)] for the set/scale pairs with per-image values."""
    out = []
    for set_name, by_scale in results.items():
        for scale, cells in by_scale.items():
            cells = {n: cells[n] for n in order if cells.get(n, {}).get('images')}
            stems = list(dict.fromkeys(s for r in cells.values() for s in r['images']))
            if cells:
                out.append((set_name, scale, cells, stems))
    return out


def per_image_markdown(results, order):
    """One Markdown table per set and scale: rows = images then mean, one column per method."""
    out = []
    for set_name, scale, cells, stems in per_image_cells(results, order):
        lines = ['', '### %s x%s, per image (PSNR / SSIM)' % (set_name, scale), '',
                 '| Image | %s |' % ' | '.join(cells), '|:--|%s' % ('--:|' * len(cells))]
        for stem in stems + [None]:
            pairs = [' / '.join(cell_pair(cells, n, False, stem)) for n in cells]
            lines.append('| %s | %s |' % (stem or 'mean', ' | '.join(pairs)))
        out.append('\n'.join(lines) + '\n')
    return ''.join(out)


def per_image_latex(results, order):
    """One booktabs table per set and scale: rows = images then Mean, methods as column groups."""
    out = []
    for set_name, scale, cells, stems in per_image_cells(results, order):
        lines = latex_head(['%s $\\times$%s' % (latex_escape(set_name), scale)], ['Image'], list(cells))
        for stem in stems + [None]:
            lines += ['\\midrule'] if stem is None else []
            values = [v for n in cells for v in cell_pair(cells, n, True, stem)]
            lines.append('%s & %s \\\\' % (latex_escape(stem or 'Mean'), ' & '.join(values)))
        out.append('\n' + '\n'.join(lines + ['\\bottomrule', '\\end{tabular}']) + '\n')
    return ''.join(out)


def tables(results, methods_order=None, per_image=False):
    """(markdown, latex) of the paper table for several sets, scales and methods.

    results: {set: {scale: {method: {'mean': {'psnr': float, 'ssim': float},
                                     'images': {image: {'psnr', 'ssim'}}}}}}
      - set: the test set name ('Set5'), in the column order wanted;
      - scale: int or str (2 or '2'), rows grouped by scale in order of appearance;
      - 'images' is optional (only --per_image tables read it); 'rank' and any
        other key are ignored (marks are computed here); a PSNR of None or inf
        means identical images (as JSON stores it);
      - a method absent from a set/scale prints '-' there.
    evaluate_grid() and the 'sets' of the JSON written by --json have this layout;
    from_run_results() converts srlab's results.json (Evaluator.results).
    methods_order: row order (method names); unlisted methods follow in order of appearance.
    per_image: append one per-image table per set and scale (methods with 'images').
    Markdown: rows = methods grouped by scale, one column per set, cells PSNR / SSIM,
    best in bold. LaTeX (booktabs): sets as PSNR/SSIM column groups under \\cmidrule,
    best \\textbf, second best \\underline when a method ranks below it."""
    results = {s: {str(k): v for k, v in by_scale.items()} for s, by_scale in results.items()}
    seen = list(dict.fromkeys(n for by_scale in results.values() for c in by_scale.values() for n in c))
    unknown = [n for n in methods_order or [] if n not in seen]
    if unknown:
        raise ValueError('methods_order: unknown method(s) %s (methods: %s)' % (', '.join(unknown), ', '.join(seen)))
    order = list(dict.fromkeys(list(methods_order or []) + seen))
    markdown, latex = grid_markdown(results, order), grid_latex(results, order)
    if per_image:
        markdown += per_image_markdown(results, order)
        latex += per_image_latex(results, order)
    return markdown, latex


def from_run_results(results, name):
    """tables() input from srlab's results.json ({set: {scale: {'psnr', 'ssim',
    'bicubic_psnr', 'bicubic_ssim', ...}}}, Evaluator.results of one run): the run as
    method `name`, and 'Bicubic' where the baseline was measured; entries without
    'psnr' (images saved without HR) are left out."""
    out = {}
    for set_name, by_scale in results.items():
        if set_name == 'provenance':  # where the numbers came from (provenance.py), not a set
            continue
        for scale, entry in by_scale.items():
            if 'psnr' not in entry:
                continue
            cells = {}
            if 'bicubic_psnr' in entry:
                cells['Bicubic'] = {'mean': {'psnr': entry['bicubic_psnr'], 'ssim': entry['bicubic_ssim']}}
            cells[name] = {'mean': {'psnr': entry['psnr'], 'ssim': entry['ssim']}}
            out.setdefault(set_name, {})[str(scale)] = cells
    return out


def run_table(rows):
    """The table a test prints: PSNR/SSIM per set and scale for rows [(set, scale,
    entry)] (Evaluator entries), a Bicubic column when the baseline was measured."""
    bic = any('bicubic_psnr' in e for _, _, e in rows)
    keys = (('psnr', 2), ('ssim', 4)) + ((('bicubic_psnr', 2), ('bicubic_ssim', 4)) if bic else ())
    head = f'{"Dataset":<12}{"Scale":>6}{"PSNR":>9}{"SSIM":>9}' + (f'{"Bicubic":>9}{"SSIM":>9}' if bic else '')
    lines = [head + f'{"s/img":>9}']
    for name, scale, e in rows:
        cells = [f'{e[k]:.{d}f}' if k in e else '-' for k, d in keys]
        lines.append(f'{name:<12}{"x" + str(scale):>6}' + ''.join(f'{c:>9}' for c in cells)
                     + f'{e["seconds_per_image"]:>9.3f}')
    return '\n'.join(lines)
