"""--tensorboard: event files that TensorBoard's reader parses back into the
logged values; one line when the package is missing; nothing without the flag."""
import sys

import pytest
import torch

from conftest import REPO, error_lines, run_main


def tiny(cache, *extra):
    return ['--model', 'EDSR', '--n_resblocks', '1', '--n_feats', '8', '--scale', '2+3', '--data_train', 'Sample',
            '--data_test', 'Sample', '--patch_size', '48', '--batch_size', '4', '--test_every', '3', '--cpu',
            '--n_threads', '0', '--dir_cache', str(cache), *extra]


def test_event_files_hold_the_logged_scalars_and_crops(tmp_path, exp_name, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    save = exp_name('tb')
    code, _, err = run_main(tiny(tmp_path, '--epochs', '2', '--tensorboard', '--save', save), capsys)
    assert code == 0, err
    d = REPO / 'experiment' / save
    ea = EventAccumulator(str(d / 'tb'), size_guidance={'images': 0}).Reload()
    st = torch.load(d / 'state.pt', weights_only=True)

    def values(tag):
        return [e.value for e in ea.Scalars(tag)], [e.step for e in ea.Scalars(tag)]
    loss, steps = values('loss/L1')
    assert steps == [1, 2] and loss == pytest.approx(st['loss_log'][:, 0].tolist(), rel=1e-6)
    assert values('lr')[0] == pytest.approx([1e-4, 1e-4])
    for i, s in enumerate((2, 3)):
        psnr, steps = values(f'psnr/Sample_x{s}')
        assert steps == [1, 2] and psnr == pytest.approx(st['psnr_log'][:, 0, i].tolist(), rel=1e-6)
        assert len(values(f'ssim/Sample_x{s}')[0]) == 2
    crops = [t for t in ea.Tags()['images'] if t.startswith('Sample_x2/')]
    assert len(crops) == 2 and len(ea.Images(crops[0])) == 2  # two images, each at both epochs


def test_missing_package_stops_with_one_line(tmp_path, exp_name, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)  # as if tensorboard were not installed
    save = exp_name('tb_missing')
    code, _, err = run_main(tiny(tmp_path, '--epochs', '1', '--tensorboard', '--save', save), capsys)
    lines = error_lines(err)
    assert code == 1 and len(lines) == 1 and 'pip install tensorboard' in lines[0] and '--tensorboard' in lines[0], err
    assert not (REPO / 'experiment' / save / 'log.txt').exists()


def test_nothing_is_written_without_the_flag(tmp_path, exp_name, capsys):
    save = exp_name('tb_off')
    code, _, err = run_main(tiny(tmp_path, '--epochs', '1', '--save', save), capsys)
    assert code == 0, err
    assert not (REPO / 'experiment' / save / 'tb').exists()
