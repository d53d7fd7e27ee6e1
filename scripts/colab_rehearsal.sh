#!/usr/bin/env bash
# Run notebooks as Colab would, on a Linux machine without Colab: what each notebook's setup cell does there.
#
#   bash scripts/colab_rehearsal.sh [NOTEBOOK ...]   # default: notebooks/0*.ipynb; needs /content to be free
#
# It builds a virtual environment with what Colab preloads (torch, ipywidgets 7.7.1 with IPython 7.34 and
# ipykernel 6.17, matplotlib, numpy, scipy, pillow, tqdm), clones this repository's HEAD (committed work only) to
# /content/diffusionlab-course as the setup cell does, makes `google.colab` imported when the kernel starts, and
# executes each notebook with that kernel in /content, Colab's working directory: the setup cell takes its Colab
# branch and runs `pip install -e /content/diffusionlab-course`. It fails if a cell fails or if that install
# changed a package Colab preloads (pip freeze before and after). TORCH chooses the torch build, e.g.
# TORCH="torch torchvision --index-url https://download.pytorch.org/whl/cpu". /content is removed at the end; the
# environment (reused by the next run) and the executed copies stay in $WORK (default /tmp/colab_rehearsal).
set -euo pipefail
ROOT=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
WORK=${WORK:-/tmp/colab_rehearsal}
TORCH=${TORCH:-torch torchvision}
NOTEBOOKS=("$@")
[ $# -eq 0 ] && NOTEBOOKS=("$ROOT"/notebooks/0*.ipynb)
if [ -e /content ]; then
  echo "/content exists: move it away first (the setup cell installs from /content/diffusionlab-course)" >&2; exit 2
fi
trap 'rm -rf /content' EXIT

mkdir -p "$WORK/out" "$WORK/fake/google/colab" "$WORK/ipython/profile_default/startup"
if [ ! -e "$WORK/venv/preloaded" ]; then  # made once, reused by later runs
  python3 -m venv "$WORK/venv"
  # shellcheck disable=SC2086  # TORCH is a list of pip arguments
  "$WORK/venv/bin/pip" install -q $TORCH
  "$WORK/venv/bin/pip" install -q ipywidgets==7.7.1 ipython==7.34.0 ipykernel==6.17.1 \
    matplotlib numpy scipy pillow tqdm nbclient nbformat
  touch "$WORK/venv/preloaded"
fi
touch "$WORK/fake/google/colab/__init__.py"
echo "import google.colab  # Colab's kernel has imported it before the first cell" \
  > "$WORK/ipython/profile_default/startup/00-colab.py"
"$WORK/venv/bin/python" -m ipykernel install --prefix "$WORK/venv" --name colab >/dev/null 2>&1
"$WORK/venv/bin/python" - "$WORK" <<'EOF'
import json, os, sys
work = sys.argv[1]
path = f"{work}/venv/share/jupyter/kernels/colab/kernel.json"
spec = json.load(open(path))
spec["env"] = {"PYTHONPATH": f"{work}/fake", "IPYTHONDIR": f"{work}/ipython", "OMP_NUM_THREADS": "1",
               "PIP_CONFIG_FILE": os.devnull,  # no local pip settings on Colab
               "PYDEVD_DISABLE_FILE_VALIDATION": "1"}  # quiets the debugger's warning at each start
json.dump(spec, open(path, "w"), indent=1)
EOF
"$WORK/venv/bin/pip" uninstall -q -y diffusionlab 2>/dev/null || true
"$WORK/venv/bin/pip" freeze > "$WORK/freeze_before.txt"
git clone -q "$ROOT" /content/diffusionlab-course

status=0
env -u PYTHONPATH "$WORK/venv/bin/python" - "$WORK/out" "${NOTEBOOKS[@]}" <<'EOF' || status=$?
import os, sys, time
import nbformat
from nbclient import NotebookClient
out, failed = sys.argv[1], 0
for path in sys.argv[2:]:
    nb = nbformat.read(path, as_version=4)
    start = time.time()
    NotebookClient(nb, kernel_name="colab", timeout=1800, allow_errors=True,
                   resources={"metadata": {"path": "/content"}}).execute()
    errors = [(i, o["ename"], o["evalue"]) for i, c in enumerate(nb.cells) for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    nbformat.write(nb, os.path.join(out, os.path.basename(path)))
    print(f"{os.path.basename(path)}: {time.time() - start:.0f} s, {len(errors)} failed cells", flush=True)
    for i, name, value in errors:
        print(f"  cell {i}: {name}: {value[:500]}")
    failed += bool(errors)
sys.exit(failed)
EOF
"$WORK/venv/bin/pip" freeze | grep -v -i '^-e .*diffusionlab' > "$WORK/freeze_after.txt"
if ! diff "$WORK/freeze_before.txt" "$WORK/freeze_after.txt"; then
  echo "the setup cell's install changed packages Colab preloads (above: < before, > after)" >&2; exit 1
fi
echo "pip changed no preloaded package; executed copies in $WORK/out"
exit $status
