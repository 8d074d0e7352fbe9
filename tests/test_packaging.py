"""The installed names: everything lives under `icb_bench`, so Hugging Face's top-level `kernels`
package (a popular dependency in the same ML environments) imports side by side with ours."""

import importlib.metadata as md
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path


def test_console_script_entry_point():
    dist = md.distribution("icb-bench")
    eps = {e.name: e.value for e in dist.entry_points if e.group == "console_scripts"}
    assert eps == {"bench": "icb_bench.bench.cli:main"}


def test_wheel_installs_only_under_icb_bench(tmp_path):
    """Build the real wheel (offline, no isolation) and list what it would install."""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), str(root)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    (whl,) = tmp_path.glob("icb_bench-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"icb_bench", whl.name.split("-")[0] + "-" + whl.name.split("-")[1] + ".dist-info"}
    for expected in ("icb_bench/bench/cli.py", "icb_bench/kernels/gemm.py", "icb_bench/verify/scoring.py",
                     "icb_bench/kernels/peaks.yaml", "icb_bench/verify/rules/icb-eval-2024.yaml"):
        assert expected in names
    assert "icb_bench/__init__.py" not in names  # a namespace root: nothing of ours to shadow


def test_side_by_side_with_hugging_face_kernels(tmp_path):
    # Hugging Face's `kernels` is in the test extras; the subprocess proves both resolve to their own code.
    code = textwrap.dedent(
        """
        import kernels, icb_bench.kernels, icb_bench.kernels.gemm, icb_bench.bench.cli
        assert kernels.__name__ == "kernels" and hasattr(kernels, "get_kernel"), kernels.__file__
        assert "site-packages" in kernels.__file__ or "dist-packages" in kernels.__file__, kernels.__file__
        assert icb_bench.kernels.__name__ == "icb_bench.kernels"
        assert hasattr(icb_bench.kernels.gemm, "GemmWorkload")
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_a_plain_kernels_module_does_not_shadow_ours(tmp_path):
    # Any other top-level `kernels` (here a stand-in on sys.path first) leaves icb_bench.kernels alone.
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "__init__.py").write_text("WHO = 'someone else'\n")
    code = "import kernels, icb_bench.kernels.dtypes as d; assert kernels.WHO == 'someone else'; assert 'fp16' in d.DTYPES; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
