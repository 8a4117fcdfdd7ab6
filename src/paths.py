"""Where srlab's folders are: the repository, and the defaults beside it."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / 'experiment'      # experiment/<save>
DATASET = REPO / 'dataset'             # default --dir_data (and its cache, --dir_cache)
MODELS = REPO / 'models'               # default --dir_models (released weights)
SHARED = REPO.parent / 'shared' / 'data'  # the shared data sets beside a checkout, when present
