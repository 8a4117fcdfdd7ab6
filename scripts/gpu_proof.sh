#!/usr/bin/env bash
# The GPU proof (speed table, CUDA correctness, --chop, video, loader), one device call:
#   bash scripts/gpu_proof.sh            on the GPU machine; results and logs in $OUT
#   TINY=1 bash scripts/gpu_proof.sh     the dry run at tiny sizes on a CPU (about 5 minutes on 2 cores)
# Parts run in order of importance, each under its own time limit, so one that hangs or fails
# leaves the others' results; summary.txt lists each part's exit status.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_proof}
TINY=${TINY:-0}
mkdir -p "$OUT"
cd "$(dirname "$0")/../src"
export PYTHONUNBUFFERED=1
part() {  # part NAME SECONDS COMMAND...: the command's output in $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*"
    timeout -k 15 "$limit" "$@" > "$OUT/$name.log" 2>&1
    echo "$name rc=$?" | tee -a "$OUT/summary.txt"
    tail -n 30 "$OUT/$name.log"
}
if [ "$TINY" = 1 ]; then
    DEV=(--cpu); SPEED=(--smoke); PAPER=eager; CHOP=120x68; QUICK=(--epochs 1 --test_every 5); FRAMES=4
else
    DEV=(); SPEED=(); PAPER=eager,bf16,bf16+cl+compile; CHOP=960x540; QUICK=(--epochs 2); FRAMES=48
fi
# 1. speed table: EDSR-baseline x2 (batch 16, HR patch 96, 1280x720) and the EDSR paper model
part speed_baseline 240 python speed.py "${SPEED[@]}" "${DEV[@]}" --n_threads 12 \
    --options eager,bf16,cl,compile,bf16+cl+compile --json "$OUT/speed_baseline.json"
part speed_paper 200 python speed.py "${SPEED[@]}" "${DEV[@]}" --paper --n_threads 12 \
    --options "$PAPER" --json "$OUT/speed_paper.json"
# 2. correctness: a quick training here against the CPU's table in README; --chop at 3840x2160
part quick 150 python main.py --template quick "${QUICK[@]}" "${DEV[@]}" --save gpu_quick --reset
cp ../experiment/gpu_quick/results.json "$OUT/quick_results.json" 2>/dev/null
part chop 90 python ../scripts/chop_check.py --size "$CHOP" --scale 4 "${DEV[@]}" --json "$OUT/chop.json"
# 3. video: a synthetic 1080p clip x2 with EDSR-baseline under bf16 (needs imageio-ffmpeg)
part video 150 python - "$FRAMES" "$TINY" "$OUT" "${DEV[@]}" <<'PY'
import sys, time, subprocess, numpy as np, imageio.v3 as iio
n, tiny, out = int(sys.argv[1]), sys.argv[2] == '1', sys.argv[3]
w, h = (192, 108) if tiny else (1920, 1080)
y, x = np.mgrid[0:h, 0:w]
frames = np.stack([np.stack([(x * 3 + t * 7) % 256, (y * 5 + t) % 256, ((x + y) * 2) % 256], -1)
                   for t in range(n)]).astype(np.uint8)
iio.imwrite(f'{out}/clip.mp4', frames, fps=24, codec='libx264', macro_block_size=1)
cmd = [sys.executable, 'main.py', '--model', 'EDSR', '--scale', '2', '--pre_train', 'none', '--amp', 'bf16',
       '--data_test', 'video', '--dir_demo', f'{out}/clip.mp4', '--test_only', '--save', 'gpu_video', '--reset',
       *sys.argv[4:]]
t0 = time.perf_counter()
r = subprocess.run(cmd, capture_output=True, text=True)
print(r.stdout[-3000:], r.stderr[-2000:])
print(f'{n} frames {w}x{h} -> x2 end to end: {n / (time.perf_counter() - t0):.2f} frames/s (process start included)')
PY
echo "done: $(cat "$OUT/summary.txt" | tr '\n' ' ')"
