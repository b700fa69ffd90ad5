#!/usr/bin/env bash
# Prepare, on a machine with PyPI, what an offline GPU machine needs to run benchmarks/gpu_check.py:
# wheels of the lab's own dependencies that such a machine lacks (Python 3.12, x86-64; it has torch,
# torchvision, numpy, pandas, pyarrow, scikit-learn, timm and the rest of DEVICE_HAS below) and Ray as
# an installed tree without its jars, RLlib, Serve, LLM and dashboard front end, packed as .tar.xz.
#
#     bash benchmarks/gpu_wheels.sh [DEST]       # DEST defaults to .gpu (ignored by git)
#
# Prints the sizes (the carried folder plus the working tree must stay under 64 MiB) and the one
# command to run on the GPU machine, from the repository root, with DEST carried along ($OUT there:
# the folder the device tool brings back).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.gpu}
PY=${PY:-.venv/bin/python}          # its pip resolves and downloads; its versions are the ones pinned
PYVER=${PYVER:-3.12}                # the GPU machine's Python
LIMIT_MIB=64

# Installed on the GPU machine already (its image's package list, as pip names them): never downloaded.
DEVICE_HAS="absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec
patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio
torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp"
# The lab's own needs for tests/gpu and gpu_check (plotly and papermill for the notebook and report tests;
# WANT="open_clip_torch ftfy wcwidth captum threadpoolctl" saves 11 MiB when the carry runs short), pinned
# to the versions of this checkout's environment; Ray's [data] extra brings its own small needs.
WANT=${WANT:-"open_clip_torch ftfy wcwidth captum plotly papermill threadpoolctl"}
RAY_EXCLUDE="ray/jars ray/rllib ray/serve ray/llm ray/dashboard/client/build"

PLATFORMS=""
for p in manylinux_2_39 manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 \
         manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do PLATFORMS+=" --platform ${p}_x86_64"; done
TARGET="--only-binary=:all: --python-version $PYVER --implementation cp $PLATFORMS"

RAY_SPEC=ray==$("$PY" -c "from importlib.metadata import version; print(version('ray'))")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$DEST"
mkdir -p "$DEST/whl"

echo "== wheels the GPU machine lacks, from: $WANT ray[data] (Requires-Dist followed, markers for Python $PYVER on Linux)"
"$PY" - "$DEST/whl" "$PYVER" "$DEVICE_HAS" "$WANT" "$RAY_SPEC" $TARGET <<'EOF'
import glob, os, re, subprocess, sys, zipfile
from importlib import metadata
from packaging.requirements import Requirement
out, pyver, have, want, ray_spec, target = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
have = {norm(n) for n in have.split()}
env = {"python_version": pyver, "python_full_version": pyver + ".0", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def local(name):  # the version this checkout's environment runs, when it has the package
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def wheel_of(name):
    for f in glob.glob(os.path.join(out, "*.whl")):
        if norm(os.path.basename(f).split("-")[0]) == norm(name):
            return f


def requires(whl, extras):
    with zipfile.ZipFile(whl) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    for line in meta.splitlines():
        if line.startswith("Requires-Dist:"):
            req = Requirement(line.split(":", 1)[1].strip())
            if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in extras or [""]):
                yield req


# the ray wheel is read for its needs only (it travels as a tree); its extra: data
todo = [(Requirement(n), ()) for n in want.split()] + [(Requirement(ray_spec), ("data",))]
seen = set()
while todo:
    req, extras = todo.pop(0)
    name = norm(req.name)
    if name in have or (name, extras) in seen:
        continue
    seen.add((name, extras))
    whl = wheel_of(req.name)
    if whl is None:
        v = local(req.name)
        spec = f"{req.name}=={v}" if v and req.specifier.contains(v, prereleases=True) else f"{req.name}{req.specifier}"
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", *target, "-d", out, spec],
                       check=True)
        whl = wheel_of(req.name)
    todo += [(r, tuple(sorted(r.extras))) for r in requires(whl, extras)]
for f in glob.glob(os.path.join(out, "ray-*.whl")):
    os.remove(f)
print("   " + " ".join(sorted("==".join(os.path.basename(f).split("-")[:2]) for f in glob.glob(os.path.join(out, "*.whl")))))
EOF

echo "== $RAY_SPEC as an installed tree, without: $RAY_EXCLUDE"
"$PY" -m pip install -q --no-deps --no-compile --target "$work/ray" $TARGET "$RAY_SPEC"
(cd "$work/ray" && rm -rf $RAY_EXCLUDE bin && find . -name __pycache__ -prune -exec rm -rf {} +)
if command -v strip >/dev/null; then  # symbol tables only (the dynamic ones stay): about 3 MiB less packed
  find "$work/ray/ray" -type f \( -name '*.so' -o -path '*/core/src/ray/*' \) -exec sh -c \
    'for f; do head -c4 "$f" | grep -q ELF && strip --strip-unneeded "$f"; done' sh {} +
fi
echo "   unpacked: $(du -sm "$work/ray" | cut -f1) MiB"
tar -C "$work/ray" -cf - . | xz -T0 -9 > "$DEST/ray.tar.xz"

mib() { "$PY" -c "import sys; print(f'{int(sys.argv[1]) / 2**20:.1f}')" "$1"; }
whl=$(du -cb "$DEST"/whl/*.whl | tail -1 | cut -f1)
ray=$(stat -c %s "$DEST/ray.tar.xz")
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
total=$((whl + ray + tree))
echo "== sizes: wheels $(mib "$whl") MiB ($(ls "$DEST"/whl | wc -l) files), ray.tar.xz $(mib "$ray") MiB, " \
     "working tree $(mib "$tree") MiB -> $(mib "$total") MiB of the $LIMIT_MIB MiB a call may carry"
ls -S "$DEST"/whl | head -5 | sed 's/^/   largest: /'
if [ "$total" -ge $((LIMIT_MIB << 20)) ]; then
  echo "!! over $LIMIT_MIB MiB: the call would be refused" >&2
  exit 1
fi
cat <<EOF
== on the GPU machine (carry ["$DEST"]), from the repository root:
python3 -m pip install -q --no-index --find-links $DEST/whl --no-deps --no-compile --no-cache-dir --target /tmp/site $DEST/whl/*.whl && tar -xJf $DEST/ray.tar.xz -C /tmp/site && export PYTHONPATH=/tmp/site:\$PWD && (python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . || true) && set -o pipefail && PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --out \$OUT/gpu_check.json 2>&1 | tee \$OUT/gpu_check.log
EOF
