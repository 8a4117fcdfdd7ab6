#!/usr/bin/env bash
# srlab recipes, in the spirit of EDSR-PyTorch's demo.sh. Run from anywhere:
#   bash demo.sh quick        the embedded default (no download): trains a small
#                             multi-scale EDSR on scikit-image's sample photos
#   bash demo.sh <recipe>     any recipe name below; `bash demo.sh list` lists them
# Data layout: see dataset/README.md. Outputs: experiment/<save>/.
set -euo pipefail
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$SELF")/src"
DATA=${DATA:-../dataset}
BENCH=${BENCH:-Set5+Set14+B100+Urban100}
# the classic sets (T91, BSD200, benchmark/Set5, Set14, B100): $DATA when it holds T91, else the shared
# data beside the checkout
if [ -d "$DATA/T91" ]; then CLASSIC=${CLASSIC:-$DATA}; else CLASSIC=${CLASSIC:-../../shared/data}; fi

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

# Model zoo, paper configurations (--template sets each paper's sizes, patch, batch and schedule).
vdsr) python main.py --template VDSR --n_colors 1 --save vdsr --reset --dir_data $DATA ;;
srresnet) python main.py --template SRResNet --scale 4 --save srresnet_x4 --reset --dir_data $DATA ;;
rcan_x2) python main.py --template RCAN --scale 2 --save rcan_x2 --reset --dir_data $DATA ;;
rcan_x4) python main.py --template RCAN --scale 4 --save rcan_x4 --reset --dir_data $DATA --pre_train ../experiment/rcan_x2/model/model_best.pt ;;
rdn_x2) python main.py --template RDN --scale 2 --save rdn_x2 --reset --dir_data $DATA ;;

# The other published protocols (RDN, RCAN): BD (Gaussian blur sigma 1.6 + sampling) and DN (bicubic + noise 30).
rdn_bd_x3) python main.py --template RDN --scale 3 --degradation BD --save rdn_bd_x3 --reset --dir_data $DATA ;;
rdn_dn_x3) python main.py --template RDN --scale 3 --degradation DN --noise_level 30 --save rdn_dn_x3 --reset --dir_data $DATA ;;
rcan_bd_x3) python main.py --template RCAN --scale 3 --degradation BD --save rcan_bd_x3 --reset --dir_data $DATA ;;
test_rdn_bd_x3) python main.py --template RDN --scale 3 --degradation BD --data_test $BENCH --dir_data $DATA --test_only --pre_train ../experiment/rdn_bd_x3/model/model_best.pt --save test_rdn_bd_x3 ;;
# RCAN/RDN's own BI test files use the edge-replicate border rule of their MATLAB script.
test_rcan_x4_rcan_lr) python main.py --template RCAN --scale 4 --imresize_border replicate --data_test $BENCH --dir_data $DATA --test_only --pre_train ../experiment/rcan_x4/model/model_best.pt --save test_rcan_x4_rcan_lr ;;
ddbpn_x4) python main.py --template DDBPN --scale 4 --save ddbpn_x4 --reset --dir_data $DATA ;;
swinir_x2) python main.py --template SwinIR --scale 2 --save swinir_x2 --reset --dir_data $DATA ;;
swinir_light_x4) python main.py --template SwinIR_light --scale 4 --save swinir_light_x4 --reset --dir_data $DATA ;;
test_swinir_released) python main.py --template SwinIR --scale 4 --pre_train download --data_test $BENCH --dir_data $DATA --test_only --chop --save test_swinir_x4 ;;

# Reproductions on the 2-core CPU machine (README "Reproduced"): the papers' networks and training set (T91),
# Adam and a cosine schedule instead of the papers' SGD, a fixed number of steps, tested at the end on
# Set5, Set14 and B100 with the MATLAB protocol (Y channel). The table is that of the final weights.
repro_fsrcnn) python main.py --template FSRCNN --amp auto --n_threads 1 --data_train T91 --data_test Set5+Set14+B100 --dir_data $CLASSIC --save repro_fsrcnn --reset ;;
repro_espcn) python main.py --template ESPCN --amp auto --n_threads 1 --data_train T91 --data_test Set5+Set14+B100 --dir_data $CLASSIC --save repro_espcn --reset ;;
# The speedrun: one network for x2+x3+x4 from scratch on T91+BSD200 ("291"), in 30 minutes of training on
# whatever CPU runs it (--amp auto picks the precision, --steps auto fits the step count and logs it; add
# the --steps N:N2 it logs to replay a run), tested on Set5, Set14 and B100. speedrun_val: the same on T91+BSD200train,
# scored on the held-out BSD200val (where the recipe is chosen; never on a test set).
speedrun) python main.py --template speedrun --dir_data $CLASSIC --save speedrun --reset ;;
speedrun_val) python main.py --template speedrun --data_train T91+BSD200train --data_test BSD200val --curve_sets BSD200val --dir_data $CLASSIC --save speedrun_val --reset ;;

# Perceptual SR (needs torchvision's vgg19-dcbb9e9d.pth in ../models or --vgg_weights PATH):
# EDSR-GAN (5*VGG54+0.15*GAN) fine-tunes a PSNR-trained x4 EDSR, as EDSR-PyTorch does; ESRGAN
# (RRDBNet, VGG54 + 0.005*RGAN + 0.01*L1) fine-tunes its PSNR-oriented RRDBNet, as the paper does;
# esrgan_edsr puts ESRGAN's loss and schedule on the x4 EDSR instead.
edsr_gan) python main.py --template GAN --scale 4 --save edsr_gan --reset --dir_data $DATA --pre_train ../experiment/edsr_baseline_x4/model/model_best.pt ;;
rrdbnet_psnr_x4) python main.py --template RRDBNet_PSNR --save rrdbnet_psnr_x4 --reset --dir_data $DATA ;;
esrgan) python main.py --template ESRGAN --save esrgan --reset --dir_data $DATA --pre_train ../experiment/rrdbnet_psnr_x4/model/model_best.pt ;;
esrgan_edsr) python main.py --template ESRGAN --model EDSR --scale 4 --save esrgan_edsr --reset --dir_data $DATA --pre_train ../experiment/edsr_baseline_x4/model/model_best.pt ;;

# Benchmarks: test only, x8 self-ensemble, saving images (weights from a run above).
test_edsr_baseline) python main.py --model EDSR --scale 2 --data_test $BENCH --dir_data $DATA --test_only --self_ensemble --save_results --pre_train ../experiment/edsr_baseline_x2/model/model_best.pt --save test_edsr_baseline_x2 ;;
# A downloaded community model (Real-ESRGAN, ESRGAN, SRVGGNetCompact files): its network, sizes and scale come
# from its keys (README "Evaluate a downloaded model"); put the file in ../models first.
test_realesrgan_x4plus) python main.py --pre_train ../models/RealESRGAN_x4plus.pth --data_test $BENCH --dir_data $DATA --test_only --save test_realesrgan_x4plus ;;
test_bicubic) python main.py --model Bicubic --scale 2+3+4 --data_test $BENCH --dir_data $DATA --test_only --save test_bicubic ;;

# Your own images: every image in --dir_demo is an LR input; results in experiment/demo/results-Demo.
demo) python main.py --model EDSR --scale 4 --data_test Demo --dir_demo ../dataset/demo --test_only --save_results --chop --pre_train ../experiment/edsr_baseline_x4/model/model_best.pt --save demo ;;

# Video: upscale a clip x4 (keeps frame rate and audio).
video) python main.py --model EDSR --scale 4 --data_test video --dir_demo ../dataset/clip.mp4 --test_only --chop --pre_train ../experiment/edsr_baseline_x4/model/model_best.pt --save video ;;

list) grep -oE '^[a-z0-9_]+\)' "$SELF" | tr -d ')' ;;
*) echo "demo.sh: unknown recipe '$1' (bash demo.sh list)" >&2; exit 2 ;;
esac
}

recipe "${1:-quick}"
