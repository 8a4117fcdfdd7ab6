"""Training: MSDataLoader, Loss, Trainer steps, skips, resume, data errors."""
import math
import re
import shutil
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / 'src'
sys.path.insert(0, str(SRC))

import option  # noqa: E402
from dataloader import ScaleBatchSampler  # noqa: E402


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp('cache'))


def tiny(cache, *extra):
    return ['--model', 'EDSR', '--n_resblocks', '1', '--n_feats', '8', '--scale', '2+3+4',
            '--data_train', 'Sample', '--data_test', 'Sample', '--patch_size', '48', '--batch_size', '4',
            '--test_every', '5', '--epochs', '2', '--n_threads', '0', '--cpu', '--dir_cache', cache,
            '--print_every', '2', *extra]


def run_main(argv):
    """main.py in this process: (exit code, stdout, stderr)."""
    import conftest
    return conftest.run_main(argv)


def error_lines(stderr):
    return [ln for ln in stderr.splitlines() if ln.strip() and 'Warning' not in ln and not ln.startswith(' ')]


# ---- sampler / loader -----------------------------------------------------
def test_sampler_one_scale_per_batch_all_scales_and_seeded():
    s = ScaleBatchSampler(n=64, batch_size=4, n_scales=3, seed=7)
    s.set_epoch(1)
    a = list(s)
    assert len(a) == 16
    for batch in a:
        assert len({idx_scale for _, idx_scale, _ in batch}) == 1
    assert {b[0][1] for b in a} == {0, 1, 2}
    assert a == list(ScaleBatchSampler(64, 4, 3, seed=7).__iter__())  # same seed, same batches
    s.set_epoch(2)
    assert list(s) != a                                             # next epoch differs
    s2 = ScaleBatchSampler(64, 4, 3, seed=8)
    assert list(s2) != a


def test_scale_weights_draw_each_scale_as_often_as_asked():
    """--scale_weights 2+1+1: half the batches at the first scale, a quarter at each other; seeded; equal
    weights keep the unweighted draw's batches (runs without the flag replay as before)."""
    s = ScaleBatchSampler(n=16000, batch_size=4, n_scales=3, seed=7, weights=[2, 1, 1])
    drawn = [b[0][1] for b in s]
    shares = [drawn.count(i) / len(drawn) for i in range(3)]
    assert shares == pytest.approx([0.5, 0.25, 0.25], abs=0.02)
    assert list(ScaleBatchSampler(16000, 4, 3, seed=7, weights=[2, 1, 1])) == list(s)
    assert [b[0][1] for b in ScaleBatchSampler(64, 4, 3, seed=7, weights=[])] == \
        [b[0][1] for b in ScaleBatchSampler(64, 4, 3, seed=7)]
    assert option.parse_args(['--scale', '2+3+4', '--scale_weights', '2+1+1']).scale_weights == [2, 1, 1]


@pytest.mark.parametrize('flags, text', [
    (['--scale', '2+3', '--scale_weights', '2+1+1'], '--scale_weights: 3 weights for the 2 scales of --scale 2+3'),
    (['--scale', '2+3', '--scale_weights', '2+0'], "--scale_weights: '2+0' is not a list of positive integers"),
])
def test_bad_scale_weights_are_one_line(flags, text, capsys):
    with pytest.raises(SystemExit) as e:
        option.parse_args(flags)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count('\n') == 1 and text in err, err


def test_sampler_ranks_take_disjoint_slices_with_the_same_scale():
    full = list(ScaleBatchSampler(64, 4, 3, seed=3))
    r0 = list(ScaleBatchSampler(64, 4, 3, seed=3, rank=0, world_size=2))
    r1 = list(ScaleBatchSampler(64, 4, 3, seed=3, rank=1, world_size=2))
    for f, a, b in zip(full, r0, r1):
        assert a + b == f
        assert a[0][1] == b[0][1]


def test_sampler_resumes_mid_epoch():
    s = ScaleBatchSampler(64, 4, 3, seed=5, max_batches=10)
    full = list(s)
    assert len(full) == 10
    s.start_batch = 6
    assert list(s) == full[6:]


def test_loader_workers_give_identical_batches(cache):
    import data
    batches = {}
    for n in (0, 2):
        args = option.parse_args(tiny(cache, '--n_threads', str(n)))
        loader = data.Data(args).loader_train
        loader.set_epoch(1)
        batches[n] = list(loader)
    assert len(batches[0]) == 5
    for (lr0, hr0, n0, s0), (lr2, hr2, n2, s2) in zip(batches[0], batches[2]):
        scale = [2, 3, 4][s0]
        assert s0 == s2 and n0 == n2
        assert lr0.shape == (4, 3, 48 // scale, 48 // scale)
        assert hr0.shape == (4, 3, 48 // scale * scale, 48 // scale * scale)
        assert torch.equal(lr0, lr2) and torch.equal(hr0, hr2)


def test_patches_are_aligned_with_bicubic_lr(cache):
    """The LR patch is the bicubic downscale of the HR patch's region."""
    import data
    from data.imresize import imresize
    args = option.parse_args(tiny(cache, '--no_augment', '--scale', '2'))
    ds = data.Data(args).loader_train.dataset
    lr, hr, name, _ = ds[(0, 0, 123)]
    full_hr = iio.imread(ds.images_hr[0])
    full_lr = imresize(full_hr, 0.5)
    lr_u8 = lr.permute(1, 2, 0).round().byte().numpy()
    hr_u8 = hr.permute(1, 2, 0).round().byte().numpy()
    # locate the HR patch in the full image and check the LR patch at half the offset
    found = False
    for y in range(0, full_hr.shape[0] - 48 + 1, 2):
        for x in range(0, full_hr.shape[1] - 48 + 1, 2):
            if np.array_equal(full_hr[y:y + 48, x:x + 48], hr_u8):
                assert np.array_equal(full_lr[y // 2:y // 2 + 24, x // 2:x // 2 + 24], lr_u8)
                found = True
    assert found


# ---- loss -----------------------------------------------------------------
def test_loss_parse_and_weighted_sum(tmp_path):
    import loss
    assert loss.parse_loss('1*L1+0.5*MSE') == [(1.0, 'L1', (0, 1)), (0.5, 'MSE', (0, 1))]
    assert loss.parse_loss('1*L1[:0.8]+0.1*mse[0.8:]') == [(1.0, 'L1', (0, 0.8)), (0.1, 'MSE', (0.8, 1))]
    for bad in ('L1', '1*L7', '1*L1+', '-1*L1', 'x*L1', '1*L1[:0.8]', '1*L1[0.5:0.4]', '1*L1[:1.5]',
                '1*L1[:0.5]+1*MSE[0.6:]', '1*L1[a:]', '1*L1[.:]'):
        with pytest.raises(ValueError, match='--loss'):
            loss.parse_loss(bad)

    class Ckp:
        dir = str(tmp_path)

        def write_log(self, *a, **k):
            pass
    args = option.parse_args(['--loss', '1*L1+0.5*MSE', '--cpu', '--test_only', '--pre_train', 'none',
                              '--data_test', 'Sample'])
    lo = loss.Loss(args, Ckp())
    lo.start_log()
    sr, hr = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 2.0)
    total = lo(sr, hr)
    assert total.item() == pytest.approx(1 * 2 + 0.5 * 4)
    assert lo.log[-1].tolist() == pytest.approx([2.0, 2.0, 4.0])
    lo.end_log(1)
    lo.plot_loss(str(tmp_path), 1)
    lo.save(str(tmp_path))
    for t in ('L1', 'MSE', 'Total'):
        assert (tmp_path / f'loss_{t}.png').exists() and (tmp_path / f'loss_{t}.pdf').exists()
    assert torch.equal(torch.load(tmp_path / 'loss_log.pt'), lo.log)


def test_psnr_term_is_the_batch_psnr_deficit_and_weighs_batches_equally_in_db():
    """PSNR: 100 - the batch's PSNR (metrics' formula on the whole batch), never negative, and its
    gradient is MSE's / MSE (x 10 / ln 10): a batch with 4x the errors gets 1/4 of the gradient (under
    MSE, 4x), so a batch with small errors is not outweighed."""
    from loss import create_loss
    term = create_loss('1*PSNR', rgb_range=255)
    hr = torch.rand(2, 3, 8, 8) * 255
    sr = hr + torch.randn_like(hr) * 3
    mse = ((sr - hr) ** 2).mean().item()
    assert term(sr, hr).item() == pytest.approx(100 - 10 * np.log10(255 ** 2 / mse), abs=1e-4)
    assert term(hr, hr).item() == pytest.approx(0, abs=1e-4)  # capped at 100 dB: never below 0

    def grad(spec, err):  # about hr = 0, so that sr - hr is err exactly (hr + err rounds near 255)
        x = err.clone().requires_grad_()
        create_loss(spec)(x, torch.zeros_like(err)).backward()
        return x.grad
    e = torch.randn(hr.shape, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(grad('1*PSNR', 4 * e), grad('1*PSNR', e) / 4, rtol=1e-3)
    assert torch.allclose(grad('1*MSE', 4 * e), grad('1*MSE', e) * 4, rtol=1e-3, atol=1e-6)


def test_ymse_term_is_the_mse_of_the_scored_luma():
    """YMSE: the MSE of metrics' Y channel (without its offset); a colour shift that keeps Y costs 0;
    a one-channel image is its own luma."""
    import metrics
    from loss import create_loss
    term = create_loss('1*YMSE')
    hr = torch.rand(2, 3, 8, 8) * 255
    sr = hr + torch.randn_like(hr) * 3
    y = lambda t: np.stack([metrics.rgb_to_y(im.permute(1, 2, 0).double().numpy()) for im in t])
    assert term(sr, hr).item() == pytest.approx(((y(sr) - y(hr)) ** 2).mean(), rel=1e-5)
    chroma = torch.tensor([128.553, -65.481, 0.0]).view(1, 3, 1, 1)  # keeps Y exactly
    assert term(hr + chroma, hr).item() == pytest.approx(0, abs=1e-6)
    assert create_loss('1*MSE')(hr + chroma, hr).item() > 1000
    gray = torch.rand(2, 1, 8, 8) * 255
    assert term(gray + 2, gray).item() == pytest.approx(4, rel=1e-6)


# ---- trainer --------------------------------------------------------------
def make_trainer(cache, tmp_path, *extra):
    import data
    import loss
    import model
    import utility
    from trainer import Trainer
    args = option.parse_args(tiny(cache, *extra, '--save', 'x'))
    ckp = utility.checkpoint(args, root=tmp_path)
    return Trainer(args, data.Data(args), model.Model(args, ckp), loss.Loss(args, ckp), ckp)


def test_skip_threshold_skips_outliers_and_nonfinite(cache, tmp_path):
    t = make_trainer(cache, tmp_path, '--skip_threshold', '3', '--scale', '2')
    t.loss.start_log()
    lr, hr = torch.rand(2, 3, 12, 12) * 255, torch.rand(2, 3, 24, 24) * 255
    assert t.step(lr, hr, 0, ['a', 'b'])
    before = [p.detach().clone() for p in t.model.parameters()]
    row = t.loss.last_values()
    assert not t.step(lr, hr * 1000, 0, ['big1', 'big2'])          # > 3 x running mean
    bad = lr.clone()
    bad[0, 0, 0, 0] = float('nan')
    assert not t.step(bad, hr, 0, ['nan1', 'nan2'])                 # non-finite
    assert t.stepper.skips_total == 2
    for a, b in zip(before, t.model.parameters()):
        assert torch.equal(a, b)                                     # never stepped
    assert torch.equal(t.loss.last_values(), row)                    # not logged
    log = (tmp_path / 'x' / 'log.txt').read_text()
    assert 'Skipped batch' in log and 'big1' in log and 'nan1' in log


def test_max_skips_stops_with_clear_error(cache, tmp_path):
    import errors
    t = make_trainer(cache, tmp_path, '--max_skips', '2', '--scale', '2')
    t.loss.start_log()
    lr = torch.full((1, 3, 12, 12), float('nan'))
    assert not t.step(lr, torch.zeros(1, 3, 24, 24), 0, ['n'])
    with pytest.raises(errors.SRLabError, match='max_skips'):
        t.step(lr, torch.zeros(1, 3, 24, 24), 0, ['n'])


def test_optimizers_and_decay(cache, tmp_path):
    for name, cls in (('SGD', torch.optim.SGD), ('ADAM', torch.optim.Adam), ('RMSprop', torch.optim.RMSprop)):
        t = make_trainer(cache, tmp_path / name, '--optimizer', name, '--decay', '2-4', '--gamma', '0.1', '--lr', '1e-3')
        assert isinstance(t.stepper.optimizer, cls)
        lrs = []
        for epoch in range(5):  # the lr of each epoch's first step
            t.stepper.advance(t.clock.position(epoch * len(t.loader_train)))
            lrs.append(t.stepper.lr())
        assert lrs == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-5])


def test_gclip_bounds_gradient_norm(cache, tmp_path):
    t = make_trainer(cache, tmp_path, '--gclip', '0.01', '--scale', '2', '--optimizer', 'SGD', '--momentum', '0')
    t.loss.start_log()
    p0 = [p.detach().clone() for p in t.model.parameters() if p.requires_grad]
    t.step(torch.rand(2, 3, 12, 12) * 255, torch.rand(2, 3, 24, 24) * 255, 0, ['a', 'b'])
    delta = torch.sqrt(sum(((p - q) ** 2).sum() for p, q in zip([p for p in t.model.parameters() if p.requires_grad], p0)))
    assert delta.item() == pytest.approx(0.01 * 1e-4, rel=2e-2)  # lr x clipped norm (float32 round-off)


# ---- end to end -----------------------------------------------------------
def test_two_epochs_with_workers_draw_all_scales(cache, exp_name):
    name = exp_name('train')
    rc, out, err = run_main(tiny(cache, '--n_threads', '2', '--test_every', '12', '--save', name))
    assert rc == 0, err
    d = REPO / 'experiment' / name
    log = (d / 'log.txt').read_text()
    lines = [ln for ln in log.splitlines() if ln.startswith('Scales drawn this epoch')]
    assert len(lines) == 2
    counts = {}
    for ln in lines:
        for part in ln.split(': ', 1)[1].split(', '):
            s, c = part.split(': ')
            counts[s] = counts.get(s, 0) + int(c)
    assert set(counts) == {'x2', 'x3', 'x4'} and all(c > 0 for c in counts.values()) and sum(counts.values()) == 24
    for f in ('model/model_latest.pt', 'model/model_best.pt', 'state.pt', 'loss_log.pt', 'psnr_log.pt',
              'loss_L1.png', 'loss_L1.pdf', 'test_Sample.png', 'test_Sample.pdf', 'results.json', 'config.txt'):
        assert (d / f).exists(), f
    assert 'Bicubic' in out


def test_resume_at_epoch_boundary_equals_uninterrupted_run(cache, exp_name):
    a, b = exp_name('train'), exp_name('train')
    common = ['--epochs', '3', '--decay', '1-2', '--gamma', '0.5', '--lr', '1e-3']
    rc, _, err = run_main(tiny(cache, *common, '--save', a))
    assert rc == 0, err
    rc, _, err = run_main(tiny(cache, *common[2:], '--epochs', '1', '--save', b))
    assert rc == 0, err
    rc, out, err = run_main(tiny(cache, *common[2:], '--epochs', '3', '--load', b, '--resume', '-1'))
    assert rc == 0, err
    wa = torch.load(REPO / 'experiment' / a / 'model' / 'model_latest.pt')
    wb = torch.load(REPO / 'experiment' / b / 'model' / 'model_latest.pt')
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6, rtol=0), k
    sa = torch.load(REPO / 'experiment' / a / 'state.pt', weights_only=True)
    sb = torch.load(REPO / 'experiment' / b / 'state.pt', weights_only=True)
    assert sa['optimizer']['param_groups'][0]['lr'] == sb['optimizer']['param_groups'][0]['lr'] == pytest.approx(2.5e-4)
    assert torch.allclose(sa['loss_log'], sb['loss_log'], atol=1e-4)
    assert sa['psnr_log'].shape == sb['psnr_log'].shape == (3, 1, 3)
    assert torch.allclose(sa['psnr_log'], sb['psnr_log'], atol=1e-4)


def test_state_is_read_without_running_code_and_older_states_resume(cache, exp_name, tmp_path, capsys):
    """state.pt loads with weights_only=True: RNG states are tensors and plain
    types. A state written before that (numpy's RNG state as a tuple holding
    an array) still resumes; a state.pt whose unpickling would run code is
    refused without running it."""
    import os
    import conftest
    import state
    name = exp_name('state')
    path = REPO / 'experiment' / name / 'state.pt'
    assert conftest.run_main(tiny(cache, '--epochs', '1', '--save', name), capsys)[0] == 0
    st = torch.load(path, weights_only=True)
    st.pop('checksum')
    n = st['rng']['numpy']
    assert isinstance(n, dict) and n['keys'].dtype == torch.int64
    st['rng']['numpy'] = (n['name'], n['keys'].numpy().astype(np.uint32), n['pos'], n['has_gauss'], n['gauss'])
    st['checksum'] = state.checksum(st)
    torch.save(st, path)
    with pytest.raises(Exception, match='Unsupported global'):
        torch.load(path, weights_only=True)
    code, out, err = conftest.run_main(tiny(cache, '--epochs', '2', '--load', name, '--resume', '-1'), capsys)
    assert code == 0, err
    assert 'Resumed from' in out and 'continuing at epoch 2' in out

    marker = tmp_path / 'ran'

    class Payload:
        def __reduce__(self):
            return os.system, (f'touch {marker}',)
    for f in (path, path.with_name('state.pt.prev')):
        torch.save({'epoch': Payload()}, f)
    code, out, err = conftest.run_main(tiny(cache, '--epochs', '3', '--load', name, '--resume', '-1'), capsys)
    lines = conftest.error_lines(err)
    assert code == 1 and not marker.exists()
    assert len(lines) == 1 and 'state.pt is not readable' in lines[0] and 'no complete state is left' in lines[0], lines


def test_pretrained_model_reproduces_logged_psnr(cache, exp_name):
    a, b = exp_name('train'), exp_name('train')
    rc, _, err = run_main(tiny(cache, '--save', a))
    assert rc == 0, err
    import json
    best = torch.load(REPO / 'experiment' / a / 'psnr_log.pt')
    rc, _, err = run_main(tiny(cache, '--test_only', '--save', b, '--pre_train',
                               str(REPO / 'experiment' / a / 'model' / 'model_best.pt')))
    assert rc == 0, err
    res = json.loads((REPO / 'experiment' / b / 'results.json').read_text())
    epoch = int(best[:, 0, 0].argmax())
    for i, s in enumerate((2, 3, 4)):
        assert res['Sample'][str(s)]['psnr'] == pytest.approx(best[epoch, 0, i].item(), abs=1e-4)


# ---- bad data -------------------------------------------------------------
def test_empty_folder_dataset_one_line(cache, tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    rc, _, err = run_main(tiny(cache, '--data_train', 'Folder', '--dir_train', str(empty), '--save', 'never_made'))
    assert rc == 1
    lines = error_lines(err)
    assert len(lines) == 1 and str(empty) in lines[0] and 'no images' in lines[0]
    assert not (REPO / 'experiment' / 'never_made' / 'model' / 'model_latest.pt').exists()
    shutil.rmtree(REPO / 'experiment' / 'never_made', ignore_errors=True)


def test_div2k_missing_one_line(cache, tmp_path):
    (tmp_path / 'DIV2K').mkdir()
    rc, _, err = run_main(tiny(cache, '--data_train', 'DIV2K', '--dir_data', str(tmp_path), '--data_range', '1-10/11-12',
                               '--save', 'never_made2'))
    assert rc == 1
    lines = error_lines(err)
    assert len(lines) == 1 and 'DIV2K_train_HR' in lines[0] and '0001' in lines[0]
    shutil.rmtree(REPO / 'experiment' / 'never_made2', ignore_errors=True)


def test_non_image_file_is_skipped_with_warning(cache, tmp_path):
    import warnings
    import data
    folder = tmp_path / 'imgs'
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        iio.imwrite(folder / f'{i}.png', rng.integers(0, 255, (60, 60, 3), dtype=np.uint8))
    (folder / 'notes.txt').write_text('not an image')
    args = option.parse_args(tiny(cache, '--data_train', 'Folder', '--dir_train', str(folder)))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        ds = data.Data(args).loader_train.dataset
    assert len(ds.images_hr) == 2
    assert any('notes.txt' in str(x.message) for x in w)


def test_corrupt_image_in_training_set_skipped_but_error_in_test_set(cache, tmp_path):
    import warnings
    import data
    from data.common import DataError
    folder = tmp_path / 'imgs'
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        iio.imwrite(folder / f'{i}.png', rng.integers(0, 255, (60, 60, 3), dtype=np.uint8))
    (folder / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'garbage' * 10)
    args = option.parse_args(tiny(cache, '--data_train', 'Folder', '--dir_train', str(folder)))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        ds = data.Data(args).loader_train.dataset
    assert len(ds.images_hr) == 2 and any('broken.png' in str(x.message) for x in w)
    bench = tmp_path / 'bench' / 'benchmark' / 'Mine' / 'HR'
    shutil.copytree(folder, bench)
    args = option.parse_args(tiny(cache, '--test_only', '--pre_train', 'none', '--data_test', 'Mine',
                                  '--dir_data', str(tmp_path / 'bench')))
    with pytest.raises(DataError, match='broken.png'):
        data.Data(args)


# ---- --time_budget ----------------------------------------------------------
def test_time_budget_stops_tests_saves_and_a_resume_continues_it(cache, exp_name):
    """--time_budget 0.03 (1.8 s): the run stops at the step where the budget is
    spent, tests and saves; its state holds the training seconds, and a resume
    goes on with what is left of the budget; --decay cosine follows it."""
    name = exp_name('budget')
    d = REPO / 'experiment' / name
    budget = ['--time_budget', '0.03', '--decay', 'cosine', '--test_every', '1000', '--epochs', '1']
    code, out, err = run_main(tiny(cache, *budget, '--save', name))
    assert code == 0, err
    assert re.search(r'--time_budget spent \(\d+\.\d min of training of the 0.03 min budget\): testing and saving', out)
    assert 'Evaluation:' in out and (d / 'results.json').exists()
    st = torch.load(d / 'state.pt', weights_only=True)
    steps = st['optimizer']['state'][0]['step'].item()
    assert 1.8 <= st['train_seconds'] < 1.8 + 2 and 1 <= steps < 1000
    assert st['epoch'] == 1 and st['start_batch'] == 0  # the cut epoch is done: tested and saved
    lr = st['optimizer']['param_groups'][0]['lr']
    assert lr < 1e-3 * (1 + math.cos(math.pi * 0.5)) / 2  # past the middle of the cosine
    # a resume with a larger budget trains on for what is left of it, not for the whole budget again
    code, out, err = run_main(tiny(cache, '--time_budget', '0.06', '--decay', 'cosine', '--test_every', '1000',
                                   '--epochs', '3', '--load', name, '--resume', '-1'))
    assert code == 0, err
    st2 = torch.load(d / 'state.pt', weights_only=True)
    assert 3.6 <= st2['train_seconds'] < 3.6 + 2 and st2['epoch'] == 2
    assert st2['optimizer']['state'][0]['step'].item() > steps


def test_time_budget_bad_values_are_one_line(cache):
    for extra, msg in ((['--time_budget', '-1'], '--time_budget: must be a non-negative number of minutes'),
                       (['--time_budget', 'nan'], '--time_budget: must be a non-negative number of minutes'),
                       (['--time_budget', 'x'], "argument --time_budget: invalid float value: 'x'"),
                       (['--decay', 'cosine', '--epochs', '0'], '--decay cosine: needs an end to follow')):
        code, out, err = run_main(tiny(cache, *extra, '--save', 'pytest_never_made'))
        lines = error_lines(err)
        assert code == 2 and len(lines) == 1 and lines[0].startswith(f'main.py: error: {msg}'), err
    assert not (REPO / 'experiment' / 'pytest_never_made').exists()
