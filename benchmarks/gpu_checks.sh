#!/usr/bin/env bash
# The checks of issue 14 that need a GPU, as one prepared script (run where CUDA exists):
#   bash benchmarks/gpu_checks.sh OUT_DIR
# 1. the CUDA tests (CPU against CUDA, the bf16 default, segmentation's torch path);
# 2. the throughput table: default shape, paper shape in bf16, and with torch.compile;
# 3. the morphological lung mask on the GPU against scipy on the CPU at the paper's size.
# Each step writes its file under OUT_DIR; a failing step does not stop the others.
set -uo pipefail
out=${1:-${OUT:-gpu-checks}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . >"$out/install.log" 2>&1 \
    || { cat "$out/install.log"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.csv"
python3 -m pytest -q -p no:cacheprovider -rs tests/test_devices.py \
    tests/test_partition.py::test_components_by_label_propagation_match_scipy 2>&1 \
    | tee "$out/tests.log"
python3 benchmarks/throughput.py --shape default --device cuda \
    --json "$out/throughput-default.json"
python3 benchmarks/throughput.py --shape paper --device cuda --precision bf16 --batch 4 \
    --json "$out/throughput-paper-bf16.json"
python3 benchmarks/throughput.py --shape paper --device cuda --precision bf16 --batch 4 \
    --compile --skip-loader --json "$out/throughput-paper-bf16-compile.json"
python3 - "$out/segmentation-paper.json" <<'PY'
import json, sys, time
import numpy as np, torch
from scipy import ndimage
from ctbench.plugins.datasets.phantom import PhantomConfig, generate_case
from ctbench.plugins.segmenters import lungs_on_device, organs

case = generate_case(PhantomConfig.from_preset("default"), "train", 0)
factors = [p / s for p, s in zip((405, 420, 420), case.volume.shape)]
volume = ndimage.zoom(case.volume, factors, order=0)
spacing = tuple(s / f for s, f in zip(case.spacing, factors))
options = (organs.THRESHOLD_HU, organs.MIN_VOLUME_ML, organs.GAS_HU)
began = time.perf_counter(); cpu = organs.lung_mask(volume, spacing, *options)
scipy_s = time.perf_counter() - began
lungs_on_device.lung_mask(volume, spacing, *options, device="cuda")  # warm-up
torch.cuda.synchronize(); began = time.perf_counter()
gpu = lungs_on_device.lung_mask(volume, spacing, *options, device="cuda")
gpu_s = time.perf_counter() - began
record = {"shape": volume.shape, "scipy_cpu_s": scipy_s, "torch_cuda_s": gpu_s,
          "equal": bool(np.array_equal(cpu, gpu))}
print(record); json.dump(record, open(sys.argv[1], "w"))
PY
