"""Compute PSNR / SSIM (MATLAB-style, see metrics.py) between SR and HR folders.

One --sr DIR: a per-image table on stdout. Several --sr NAME=DIR (one per
method, e.g. Bicubic=..., EDSR=..., EDSR+=... for self-ensemble): Markdown
tables on stdout (mean per method, then per image); --latex writes a booktabs
table with the best value of each column in \\textbf and the second best
in \\underline (with three methods or more). Several sets and scales in one
call (--sets Set5+Set14 --scale 2+3+4, --hr the benchmark folder): one paper
table, methods as rows grouped by scale, sets as PSNR/SSIM column groups."""
import argparse
import os
import re
import sys
import warnings
from pathlib import Path

import provenance
import scoring
import tables
from data import common

HELP_EPILOG = """\
methods (one set, one scale):
  --sr DIR            one folder: per-image table, JSON {images, mean}.
  --sr NAME=DIR ...   one or more methods (a plain DIR among several is named by
                      its folder name). stdout: Markdown table of the means
                      (rows = methods, best in **bold**), then a per-image
                      Markdown table (cells PSNR / SSIM). --markdown FILE
                      writes the same Markdown, --latex FILE (or -, stdout)
                      a booktabs table: per column (PSNR, SSIM; higher is
                      better) best in \\textbf, second best in \\underline
                      when three or more methods are compared and one ranks
                      below it (with two, it would only mark the worse).
                      Ranks are dense on the printed values (2 decimals for
                      PSNR, 4 for SSIM): ties share a mark. Identical images
                      give PSNR inf (printed inf / $\\infty$, ranked first,
                      null in JSON). JSON: {scale, shave, methods: {NAME:
                      {images, mean, rank}}}.

several sets and scales (one paper table):
  --hr BENCH --sets Set5+Set14+B100 --scale 2+3+4 (lists joined with '+')
                      scores BENCH/<Set>/HR (or BENCH/<Set> itself when it
                      holds the images) at each scale; without --sets, the
                      --hr folder is the only set, named by its folder (Set5
                      for benchmark/Set5 or benchmark/Set5/HR). stdout and
                      --markdown: one table, rows = methods grouped by scale,
                      one column per set (cells PSNR / SSIM, best in bold);
                      --latex: booktabs, each set a PSNR/SSIM column group
                      under a \\cmidrule, rows grouped by scale (\\midrule),
                      marks as above per set, scale and metric. --per_image
                      adds one per-image table per set and scale (images as
                      rows, methods as column groups, marks per image).
                      JSON: {shave: {scale: pixels}, sets: {Set: {scale:
                      {NAME: {images, mean, rank}}}}}.

lookup (where --sr NAME=SPEC finds its images for set <Set> at scale S):
  1. SPEC with {set} / {scale} placeholders is a pattern:
       RCAN='SR/BI/RCAN/{set}/x{scale}' -> SR/BI/RCAN/Set5/x2
  2. else the first folder that exists of
       SPEC/results-<Set>   an srlab / EDSR-PyTorch run (experiment/<save>),
                            one folder for every scale: baby_x2_SR.png ...
       SPEC/<Set>           one subfolder per set
       SPEC                 only when a single set is scored
  then, when it holds a subfolder x<S> (or X<S>), that subfolder. A folder
  may hold several scales' images: those of another scale (baby_x3_SR.png,
  babyx3.png, baby_x3.png, baby_RCAN_x3.png when scoring x2) are ignored.
  A method without a folder or images for a set and scale stops the run
  with one line naming the method, the set and the scale (exit code 1).

pairing rule (SR file name -> HR file name, S = --scale):
  1. the same stem (file name without extension);
  2. else these suffixes, in order; the first stripped stem that names an
     HR image wins:
    _x{S}_SR   (baby_x2_SR.png -> baby)   EDSR-PyTorch / srlab
    _SR        (baby_SR.png    -> baby)
    x{S}       (babyx2.png     -> baby)
    _x{S}      (baby_x2.png    -> baby)
  3. else _<token>_x{S}        (baby_RCAN_x2.png -> baby)  RCAN / RDN
  4. else _<token>             (baby_RealESRGAN.png -> baby)  BasicSR
  a token is one word without "_" and not x<number> (so baby_x3.png is not
  taken for scale 2). SR files whose stem ends in _LR or _HR are ignored.
  Every HR image needs exactly one SR image and every other SR image must
  match an HR image (at this or another scale), otherwise the run stops
  with one error line (naming the method when there are several) and exit
  code 1.

images:
  read as training and --test_only read them (src/data/common.py): files
  ending in %s;
  alpha dropped, palette as RGB, 16-bit to 8-bit (v / 257, rounded), float
  images rounded to 8 bits (times 255 when all values are <= 1). Other files
  are skipped with a warning.

sizes:
  if the HR image is larger than the SR image by less than S pixels in each
  dimension, HR is cropped to a multiple of S (mod-crop) before comparing.

metrics:
  Y channel (16 + (65.481 R + 128.553 G + 24.966 B) / 255, float) for RGB,
  the single channel for grayscale; --shave pixels are removed at each
  border (default S). PSNR in dB, SSIM with an 11x11 Gaussian window.
""" % ' '.join(common.IMG_EXTS)


def _warning_line(message, *_):
    print('evaluate.py: warning: %s' % message, file=sys.stderr)


def parse_methods(values):
    """[(name, folder or pattern)] from the --sr values; a plain DIR is named by its folder."""
    methods = []
    for v in values:
        name, sep, folder = v.partition('=')
        if not sep or not name or not folder or os.path.isdir(v):
            name, folder = Path(v).name or v, v
        methods.append((name, folder))
    return methods


def write_text(text, path):
    """Write `text` to `path` ('-': stdout)."""
    if path == '-':
        sys.stdout.write(text)
    else:
        Path(path).write_text(text)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        # one line, no usage dump
        self.exit(2, '%s: error: %s\n' % (self.prog, message))


def build_parser():
    parser = Parser(prog='evaluate.py', description=__doc__, epilog=HELP_EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    a = parser.add_argument
    a('--sr', required=True, action='append', metavar='[NAME=]DIR',
      help='super-resolved images: a folder, an srlab run folder or a {set}/{scale} pattern '
           '(see lookup); repeat as NAME=... to compare methods')
    a('--hr', required=True,
      help='folder of ground-truth images, a benchmark set folder holding HR/, or with --sets '
           'the benchmark folder holding <Set>/HR')
    a('--sets', default=None, metavar='SET+SET',
      help="test sets joined with '+' (Set5+Set14+B100): folders of --hr")
    a('--scale', required=True, metavar='S[+S]', help="upscaling factor(s), joined with '+' (2+3+4)")
    a('--shave', type=int, default=None, help='border pixels ignored on each side (default: S)')
    a('--gray_hr', default='stacked', choices=('stacked', 'own'),
      help="how a grayscale HR file (Set14's bridge) is scored against an RGB SR image: stacked to 3 channels "
           'and Y-converted (EDSR-PyTorch, BasicSR, RCAN) or on its own values against the SR Y mapped back to '
           '0..255 (the SRCNN/VDSR-era MATLAB scripts)')
    a('--json', default=None, help='also write results to this JSON file (with a provenance block)')
    a('--markdown', default=None, metavar='FILE',
      help='write the Markdown tables to FILE (several methods: also printed)')
    a('--latex', default=None, metavar='FILE', help='write the LaTeX (booktabs) table to FILE; - prints it')
    a('--per_image', action='store_true',
      help='add per-image tables to the LaTeX output, and to the Markdown of several sets or scales '
           '(that of one set and scale always has one)')
    return parser


def plus_list(flag, text, kind):
    """'2+3+4' -> [2, 3, 4] (kind int: positive) or 'Set5+Set14' -> names; ValueError naming flag."""
    items = str(text).split('+')
    example = '2+3+4' if kind is int else 'Set5+Set14+B100'
    bad = ValueError("%s: '%s' is not a list of %s joined with '+' (e.g. %s)"
                     % (flag, text, 'positive integers' if kind is int else 'folder names', example))
    if kind is int:
        if not all(re.fullmatch(r'\d+', x) and int(x) > 0 for x in items):
            raise bad
        items = [int(x) for x in items]
    elif not all(x and x not in ('.', '..') and '/' not in x and os.sep not in x for x in items):
        raise bad
    if len(set(items)) != len(items):
        raise ValueError("%s: repeated value in '%s'" % (flag, text))
    return items


def check_args(parser, args):
    """(scales, sets or None, methods) from the flags; a bad value exits with one line (code 2)."""
    try:
        scales = plus_list('--scale', args.scale, int)
        sets = None if args.sets is None else plus_list('--sets', args.sets, str)
    except ValueError as e:
        parser.error(str(e))
    if args.shave is not None and args.shave < 0:
        parser.error('--shave must be >= 0')
    methods = parse_methods(args.sr)
    names = [n for n, _ in methods]
    if len(set(names)) != len(names):
        parser.error('method names must differ: %s' % ', '.join(names))
    for (name, spec), value in zip(methods, args.sr):
        try:
            fields = scoring.pattern_fields(spec)
        except ValueError as e:
            parser.error('--sr %s: %s' % (value, e))
        if set(fields) - {'set', 'scale'}:
            parser.error('--sr %s: placeholders are {set} and {scale}, got %s'
                         % (value, ', '.join('{%s}' % f for f in fields)))
        if fields and spec == value:
            parser.error('--sr %s: name the method of a pattern: NAME=%s' % (value, value))
        if fields and 'set' not in fields and sets is not None and len(sets) > 1:
            parser.error('--sr %s: several sets need {set} in the pattern' % value)
    return scales, sets, methods


def run_single(args, methods, scale):
    """One set, one scale: the tables and JSON of the single-set interface."""
    set_name = scoring.hr_sets(args.hr, None)[0][0]
    folders = [(n, scoring.sr_folder(spec, set_name, scale, True)) for n, spec in methods]
    single = len(args.sr) == 1 and methods[0][1] == args.sr[0]
    if single:
        result = scoring.evaluate(folders[0][1], args.hr, scale, args.shave, args.gray_hr)
        multi = {'scale': scale, 'shave': scale if args.shave is None else args.shave,
                 'methods': tables.add_ranks({folders[0][0]: dict(result)})}
    else:
        result = multi = scoring.evaluate_methods(folders, args.hr, scale, args.shave, args.gray_hr)
    print(tables.format_table(result) if single else tables.markdown_tables(multi), end='\n' if single else '')
    if args.markdown:
        write_text(tables.markdown_tables(multi), args.markdown)
    if args.latex:
        extra = tables.per_image_latex({set_name: {str(scale): multi['methods']}}, list(multi['methods']))
        write_text(tables.latex_table(multi) + (extra if args.per_image else ''), args.latex)
    if args.json:
        scoring.write_json({**result, 'provenance': provenance.of_tool('evaluate.py', args.argv, gray_hr=args.gray_hr)},
                           args.json)


def run_grid(args, methods, scales, sets):
    """Several sets or scales: one table (tables()) and the JSON {shave, sets}."""
    grid = scoring.evaluate_grid(methods, scoring.hr_sets(args.hr, sets), scales, args.shave, args.gray_hr)
    markdown, latex = tables.tables(grid, [n for n, _ in methods], args.per_image)
    print(markdown, end='')
    if args.markdown:
        write_text(markdown, args.markdown)
    if args.latex:
        write_text(latex, args.latex)
    if args.json:
        shave = {str(s): s if args.shave is None else args.shave for s in scales}
        scoring.write_json({'shave': shave, 'sets': grid,
                            'provenance': provenance.of_tool('evaluate.py', args.argv, gray_hr=args.gray_hr)}, args.json)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    scales, sets, methods = check_args(parser, args)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line  # one line per skipped file
            if sets is None and len(scales) == 1:
                run_single(args, methods, scales[0])
            else:
                run_grid(args, methods, scales, sets)
    except (scoring.EvalError, OSError) as e:
        print('evaluate.py: error: %s' % e, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
