"""Perceptual losses VGG22 and VGG54 (SRGAN/EDSR): MSE between VGG19
features of SR and HR, taken before the named ReLU (VGG22: after conv2_2,
VGG54: after conv5_4). The network is defined here with torchvision's
`features.N` layout, so torchvision's vgg19 weights file loads as it is.
Nothing is downloaded: the file comes from --vgg_weights."""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from errors import SRLabError, error_text
from loss.flags import Flag
from loss.term import Term
from paths import MODELS
from registry import LOSSES

VGG19_CFG = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M',
             512, 512, 512, 512, 'M', 512, 512, 512, 512, 'M']
WEIGHTS_FILE = 'vgg19-dcbb9e9d.pth'
WEIGHTS_URL = 'https://download.pytorch.org/models/' + WEIGHTS_FILE
CUT = {'VGG22': 8, 'VGG54': 35}  # features[:n] ends before that ReLU
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class VGG19(nn.Module):
    """The convolutional part of torchvision's vgg19 (keys features.0 ... features.34)."""

    def __init__(self):
        super().__init__()
        layers, c = [], 3
        for v in VGG19_CFG:
            if v == 'M':
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        for m in self.features:  # torchvision's init (the weights file replaces it)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.features(x)


def find_weights(vgg_weights='', dir_models=''):
    """--vgg_weights, else <--dir_models>/vgg19-dcbb9e9d.pth, else torch's hub cache; None if absent."""
    if vgg_weights:
        return vgg_weights if os.path.isfile(vgg_weights) else None
    for d in (dir_models, os.path.join(torch.hub.get_dir(), 'checkpoints')):
        p = os.path.join(d, WEIGHTS_FILE)
        if d and os.path.isfile(p):
            return p
    return None


def load_vgg19(name, vgg_weights='', dir_models=''):
    path = find_weights(vgg_weights, dir_models)
    if path is None:
        where = f'no file {vgg_weights}' if vgg_weights else 'no weights given'
        raise SRLabError(
            f"--loss {name} needs torchvision's VGG19 weights ({where}): download {WEIGHTS_URL} "
            f"and pass --vgg_weights /path/to/{WEIGHTS_FILE} (or put it in {dir_models}/)")
    try:
        sd = torch.load(path, map_location='cpu', weights_only=True)
        net = VGG19()
        net.load_state_dict({k: v for k, v in sd.items() if k.startswith('features.')})
    except Exception as e:
        raise SRLabError(f'--vgg_weights: {path} is not a torchvision vgg19 state_dict '
                                 f'({error_text(e)})')
    return net


class VGG(Term):
    """MSE of frozen VGG19 features up to layer `cut` of features.N (a
    variant sets it). The network is kept out of the registered modules, so
    it is neither trained nor saved in Loss.state_dict()."""
    flags = (Flag('vgg_weights', "torchvision's vgg19-dcbb9e9d.pth (default: looked up in --dir_models and the "
                  'torch hub cache; never downloaded)'),)
    cut = None

    def __init__(self, rgb_range=255, vgg_weights='', dir_models=str(MODELS)):
        super().__init__()
        net = nn.Sequential(*list(load_vgg19(self.label, vgg_weights, dir_models).features)[:self.cut]).eval()
        for p in net.parameters():
            p.requires_grad = False
        self.__dict__['vgg'] = net  # not a submodule: no state_dict keys, no .to()/.train()
        self.rgb_range = rgb_range
        self.register_buffer('mean', torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def features(self, x):
        if x.size(1) == 1:
            x = x.expand(-1, 3, -1, -1)
        x = (x / self.rgb_range - self.mean.to(x)) / self.std.to(x)
        return self.vgg(x)

    def forward(self, sr, hr):
        p = next(self.vgg.parameters())
        if p.device != sr.device or p.dtype != sr.dtype:
            self.vgg.to(sr.device, sr.dtype)
        f_sr = self.features(sr)
        with torch.no_grad():
            f_hr = self.features(hr.detach())
        return F.mse_loss(f_sr, f_hr)


@LOSSES.register('VGG22')
class VGG22(VGG):
    """Features before the ReLU after conv2_2."""
    cut = CUT['VGG22']


@LOSSES.register('VGG54')
class VGG54(VGG):
    """Features before the ReLU after conv5_4."""
    cut = CUT['VGG54']
