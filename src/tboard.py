"""TensorBoard logging for --tensorboard, into experiment/<save>/tb.

Optional: the tensorboard package is imported only when the flag asks for
it, and a run without it stops at startup with one line saying what to
install. Training logs the loss terms and the learning rate per epoch, the
evaluator PSNR/SSIM per set and scale and a few SR/HR crops per test."""
from errors import SRLabError


class Board:
    def __init__(self, directory):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise SRLabError('--tensorboard needs the tensorboard package: pip install tensorboard') from None
        self.writer = SummaryWriter(directory)

    def scalars(self, step, values):
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def image(self, tag, chw, step):
        """A CxHxW float image on 0..1."""
        self.writer.add_image(tag, chw.clamp(0, 1), step)

    def close(self):
        self.writer.close()
