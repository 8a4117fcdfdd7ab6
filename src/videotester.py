"""VideoTester: upscales a video (--data_test video --dir_demo clip.mp4)."""
import utility


class VideoTester:
    def __init__(self, args, my_model, ckp):
        self.args = args
        self.model = my_model
        self.ckp = ckp

    def test(self):
        raise utility.SRLabError('--data_test video: video upscaling is not implemented yet')
