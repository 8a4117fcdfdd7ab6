#!/usr/bin/env bash
# srlab recipes, in the spirit of EDSR-PyTorch's demo.sh. Run from anywhere:
#   bash demo.sh quick        the embedded default (no download): trains a small
#                             multi-scale EDSR on scikit-image's sample photos
#   bash demo.sh <recipe>     any recipe name below; `bash demo.sh list` lists them
# Data layout: see dataset/README.md. Outputs: experiment/<save>/.
set -euo pipefail
cd "$(dirname "$0")/src"
DATA=${DATA:-../dataset}
BENCH=${BENCH:-Set5+Set14+B100+Urban100}

recipe() {
case "$1" in
# The embedded default: EDSR --scale 2+3+4 (reduced), ~3 min on 2 CPU cores.
quick) python main.py --template quick --reset ;;

# EDSR baseline x2, then x3/x4 starting from the x2 weights (as in the paper).
edsr_baseline_x2) python main.py --model EDSR --scale 2 --patch_size 96 --save edsr_baseline_x2 --reset --dir_data $DATA ;;
edsr_baseline_x3) python main.py --model EDSR --scale 3 --patch_size 144 --save edsr_baseline_x3 --reset --dir_data $DATA --pre_train ../experiment/edsr_baseline_x2/model/model_best.pt ;;
edsr_baseline_x4) python main.py --model EDSR --scale 4 --patch_size 192 --save edsr_baseline_x4 --reset --dir_data $DATA --pre_train ../experiment/edsr_baseline_x2/model/model_best.pt ;;

# EDSR paper model (32 blocks, 256 feats, res_scale 0.1).
edsr_x2) python main.py --template EDSR_paper --scale 2 --patch_size 96 --save edsr_x2 --reset --dir_data $DATA ;;
edsr_x3) python main.py --template EDSR_paper --scale 3 --patch_size 144 --save edsr_x3 --reset --dir_data $DATA --pre_train ../experiment/edsr_x2/model/model_best.pt ;;
edsr_x4) python main.py --template EDSR_paper --scale 4 --patch_size 192 --save edsr_x4 --reset --dir_data $DATA --pre_train ../experiment/edsr_x2/model/model_best.pt ;;

# One EDSR body for x2/x3/x4 (one random scale per batch).
edsr_multiscale) python main.py --model EDSR --scale 2+3+4 --patch_size 96 --save edsr_multiscale --reset --dir_data $DATA ;;

# MDSR baseline and paper size.
mdsr) python main.py --template MDSR --save mdsr_baseline --reset --dir_data $DATA ;;
mdsr_paper) python main.py --template MDSR_paper --save mdsr --reset --dir_data $DATA ;;

# Benchmarks: test only, x8 self-ensemble, saving images (weights from a run above).
test_edsr_baseline) python main.py --model EDSR --scale 2 --data_test $BENCH --dir_data $DATA --test_only --self_ensemble --save_results --pre_train ../experiment/edsr_baseline_x2/model/model_best.pt --save test_edsr_baseline_x2 ;;
test_bicubic) python main.py --model Bicubic --scale 2+3+4 --data_test $BENCH --dir_data $DATA --test_only --save test_bicubic ;;

# Your own images: every image in --dir_demo is an LR input; results in experiment/demo/results-Demo.
demo) python main.py --model EDSR --scale 4 --data_test Demo --dir_demo ../dataset/demo --test_only --save_results --chop --pre_train ../experiment/edsr_baseline_x4/model/model_best.pt --save demo ;;

# Video: upscale a clip x4 (keeps frame rate and audio).
video) python main.py --model EDSR --scale 4 --data_test video --dir_demo ../dataset/clip.mp4 --test_only --chop --pre_train ../experiment/edsr_baseline_x4/model/model_best.pt --save video ;;

list) grep -oE '^[a-z0-9_]+\)' "$0" | tr -d ')' ;;
*) echo "demo.sh: unknown recipe '$1' (bash demo.sh list)" >&2; exit 2 ;;
esac
}

recipe "${1:-quick}"
