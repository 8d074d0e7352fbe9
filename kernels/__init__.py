"""GEMM workloads and one backend module per device family.

This package knows nothing of the rest of icb-bench: it takes a backend name, a device index and
a GEMM description, and returns timings and correctness checks. Vendor libraries (torch_npu,
torch_mlu, torch_musa, …) are imported lazily inside their own backend module.
"""
