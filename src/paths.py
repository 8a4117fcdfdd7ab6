"""Where srlab's folders are: the repository, and the defaults beside it."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / 'experiment'      # experiment/<save>
DATASET = REPO / 'dataset'             # default --dir_data (and its cache, --dir_cache)
MODELS = REPO / 'models'               # default --dir_models (released weights)
SHARED = REPO.parent / 'shared' / 'data'  # the shared data sets beside a checkout, when present


def holds_run(d):
    """True when experiment folder `d` holds what training saved: a .pt file in
    it (the run state, the PSNR log, the loss) or weights in its model/ folder
    (every save writes them first). A --test_only run writes none of these (an
    empty model/ folder it left in older versions does not count)."""
    import os
    if not os.path.isdir(d):
        return False
    model_dir = os.path.join(d, 'model')
    return (any(f.endswith('.pt') for f in os.listdir(d))
            or os.path.isdir(model_dir) and any(f.endswith('.pt') for f in os.listdir(model_dir)))
