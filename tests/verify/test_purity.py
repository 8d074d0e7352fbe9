"""verify/ is pure data: importing it (and its CLI) pulls in no torch and no vendor library."""

import subprocess
import sys


def test_no_torch_or_vendor_imports():
    code = (
        "import sys\n"
        "import icb_bench.verify, icb_bench.verify.cli, icb_bench.verify.measured, icb_bench.verify.report\n"
        "from icb_bench.verify.measured import load_records\n"
        "import icb_bench.bench.record, icb_bench.bench.meter_energy, icb_bench.verify.rack_energy\n"
        "from icb_bench.verify.rules import load_peaks\n"
        "load_peaks()  # the datasheet table is kernels' data file, read without importing kernels\n"
        "bad = [m for m in ('torch', 'torch_npu', 'pynvml', 'icb_bench.kernels', 'numpy') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
