"""notebooks/demo.ipynb: stored without outputs, runs top to bottom, and its numbers make sense.

The notebook is executed with nbclient in a kernel started from *this* interpreter (a kernelspec written
to tmp_path whose argv is ``sys.executable``, so the installed ``python3`` spec, whose argv is a bare
``python``, cannot pick another environment), with the working folder and ``TMPDIR`` in tmp_path. Its last
cell prints a JSON summary, which the test checks.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "demo.ipynb"


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream"
                   and o.get("name") == "stdout")


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the demo notebook has no code cells"
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"cells {dirty} have outputs: clear them (tools/make_demo_notebook.py writes a clean notebook)"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.slow
def test_notebook_runs_and_reports_sensible_numbers(tmp_path):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    kernels = tmp_path / "kernels"
    (kernels / "descnet-test").mkdir(parents=True)
    (kernels / "descnet-test" / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "descnet test", "language": "python"}))
    km = KernelManager(kernel_name="descnet-test", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    scratch = tmp_path / "tmp"
    scratch.mkdir()

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, km=km, timeout=300, resources={"metadata": {"path": str(workdir)}})
    inline = "module://matplotlib_inline.backend_inline"  # figures become outputs whatever MPLBACKEND CI sets
    client.execute(env={**os.environ, "TMPDIR": str(scratch), "MPLBACKEND": inline})

    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert not any(workdir.iterdir()), "the notebook wrote into the working folder instead of its temp folder"
    assert any(scratch.glob("descnet-demo-*/run/last.pt")), "the Trainer wrote no checkpoint in the notebook's folder"
    figures = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(figures) == 4  # sequence images, patch grid, loss curve, matches

    results = json.loads(_stdout(nb.cells[-1]).strip().splitlines()[-1])
    assert results["model"] == "hardnet"
    training = results["training"]
    assert training["steps"] == 30
    assert training["points"] > 500 and training["patches"] == 16 * training["points"]
    assert training["last_loss"] < training["first_loss"]
    assert results["descriptor_shape"][1] == 128

    # the image pair: verified matches agree with the ground-truth homography
    for label in ("trained", "opencv-rootsift"):
        pair = results["pair"][label]
        assert pair["matches"] >= pair["inliers"] >= 40, (label, pair)
        assert pair["correct_inliers"] >= 0.9 * pair["inliers"], (label, pair)

    # HPatches matching task on the held-out sequences: training helps, RootSIFT is a strong baseline
    m_ap = results["matching_map"]
    assert all(0.0 <= v <= 1.0 for v in m_ap.values()), m_ap
    assert m_ap["trained"] > m_ap["untrained"] + 0.05, m_ap
    assert m_ap["rootsift"] > 0.5, m_ap
    assert results["held_out_rows"] == {"i_synth009": 80, "v_synth008": 80}
