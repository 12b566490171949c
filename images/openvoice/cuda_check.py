#!/usr/bin/env python3
"""Report whether the OpenVoice image can use CUDA 11.8 with cuDNN 8.

Installed in the image as /opt/vmctl/cuda_check.py. vmctl runs it with the GPU attached,
locally (`vmctl gpu --probe`, `vmctl doctor`) and on the ECS GPU hosts:

    python3 /opt/vmctl/cuda_check.py

Output: exactly one JSON object on stdout, nothing else.
    torch_version       torch.__version__, e.g. "2.0.1+cu118"
    torch_cuda_version  torch.version.cuda, e.g. "11.8" (null for a CPU-only torch)
    cudnn_version       torch.backends.cudnn.version(), e.g. 8700
    cudnn_major         e.g. 8
    cuda_available      torch.cuda.is_available()
    device_count        number of GPUs torch can see
    devices             [{index, name, capability "7.5", total_memory_mib}]
    expected            {"cuda": "11.8", "cudnn_major": 8}
    ok                  true when CUDA is available and torch's CUDA and cuDNN match `expected`
    error               null when ok. Otherwise says why not, including any exception caught.
Exit status: 0 when ok, 1 when not, 2 when torch cannot be imported.

The script never raises: every failure ends up in `error`. Anything torch or the CUDA
libraries print while loading goes to stderr, so stdout stays valid JSON.
Requires Python 3.8+ and only the standard library and torch.
"""

import json
import os
import sys
import warnings

EXPECTED_CUDA = "11.8"
EXPECTED_CUDNN_MAJOR = 8

EXIT_OK = 0
EXIT_NOT_READY = 1
EXIT_NO_TORCH = 2


def new_report():
    return {
        "torch_version": None,
        "torch_cuda_version": None,
        "cudnn_version": None,
        "cudnn_major": None,
        "cuda_available": False,
        "device_count": 0,
        "devices": [],
        "expected": {"cuda": EXPECTED_CUDA, "cudnn_major": EXPECTED_CUDNN_MAJOR},
        "ok": False,
        "error": None,
    }


def describe(exc):
    text = str(exc).strip()
    return type(exc).__name__ + (": " + text if text else "")


def cudnn_major_of(version):
    # cuDNN 8 and earlier encode MAJOR*1000 + MINOR*100 + PATCH (8.7.0 -> 8700).
    # cuDNN 9 moved to MAJOR*10000 + MINOR*100 + PATCH (9.1.0 -> 90100).
    if version is None:
        return None
    return version // 10000 if version >= 10000 else version // 1000


def cuda_matches(version):
    return version == EXPECTED_CUDA or (version or "").startswith(EXPECTED_CUDA + ".")


def collect():
    """Fill in the report, one guarded step at a time, so a failure late on keeps what came before."""
    report = new_report()
    problems = []

    try:
        import torch
    except Exception as exc:  # ImportError, or OSError when a shared library of torch is missing
        report["error"] = "cannot import torch: " + describe(exc)
        return report, EXIT_NO_TORCH

    try:
        report["torch_version"] = str(torch.__version__)
    except Exception as exc:
        problems.append("torch.__version__: " + describe(exc))

    try:
        cuda = getattr(getattr(torch, "version", None), "cuda", None)
        report["torch_cuda_version"] = None if cuda is None else str(cuda)
    except Exception as exc:
        problems.append("torch.version.cuda: " + describe(exc))

    try:
        cudnn = torch.backends.cudnn.version()
        if cudnn is not None:
            report["cudnn_version"] = int(cudnn)
            report["cudnn_major"] = cudnn_major_of(int(cudnn))
    except Exception as exc:
        problems.append("torch.backends.cudnn.version(): " + describe(exc))

    # is_available() reports why CUDA can't start (driver too old, no device, ...) only as a
    # warning. Record it so the reason ends up in `error`.
    caught = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report["cuda_available"] = bool(torch.cuda.is_available())
    except Exception as exc:
        problems.append("torch.cuda.is_available(): " + describe(exc))

    if report["cuda_available"]:
        try:
            report["device_count"] = int(torch.cuda.device_count())
        except Exception as exc:
            problems.append("torch.cuda.device_count(): " + describe(exc))
        for index in range(report["device_count"]):
            try:
                props = torch.cuda.get_device_properties(index)
                report["devices"].append({
                    "index": index,
                    "name": str(props.name),
                    "capability": "%d.%d" % (props.major, props.minor),
                    "total_memory_mib": int(props.total_memory) // (1024 * 1024),
                })
            except Exception as exc:
                problems.append("device %d: %s" % (index, describe(exc)))

    # Explain every way in which the result falls short of `expected`.
    if not report["cuda_available"]:
        reason = "CUDA is not available to torch"
        messages = sorted(set(str(w.message).strip() for w in caught if str(w.message).strip()))
        if messages:
            reason += " (" + "; ".join(messages) + ")"
        if os.environ.get("CUDA_VISIBLE_DEVICES") is not None and not os.environ["CUDA_VISIBLE_DEVICES"].strip():
            reason += "; CUDA_VISIBLE_DEVICES is empty, which hides every GPU (OPENVOICE_DEVICE=cpu sets that)"
        problems.insert(0, reason)
    elif report["device_count"] < 1:
        problems.insert(0, "torch reports CUDA available but sees no device")

    cuda = report["torch_cuda_version"]
    if cuda is None:
        problems.append("torch is a CPU-only build (torch.version.cuda is None), expected CUDA " + EXPECTED_CUDA)
    elif not cuda_matches(cuda):
        problems.append("torch is built for CUDA %s, expected %s" % (cuda, EXPECTED_CUDA))

    major = report["cudnn_major"]
    if major is None:
        problems.append("cuDNN is not available to torch, expected cuDNN %d" % EXPECTED_CUDNN_MAJOR)
    elif major != EXPECTED_CUDNN_MAJOR:
        problems.append("cuDNN major version is %d, expected %d" % (major, EXPECTED_CUDNN_MAJOR))

    report["ok"] = (
        report["cuda_available"]
        and report["device_count"] > 0
        and cuda_matches(cuda)
        and major == EXPECTED_CUDNN_MAJOR
        and not problems
    )
    report["error"] = None if report["ok"] else "; ".join(problems)
    return report, (EXIT_OK if report["ok"] else EXIT_NOT_READY)


def main():
    # Point fd 1 at stderr while torch loads. Native code (CUDA, cuDNN, NCCL) may write to
    # stdout, out of Python's reach. The real stdout is restored for the one JSON line.
    saved_stdout = None
    try:
        sys.stdout.flush()
        saved_stdout = os.dup(1)
        os.dup2(2, 1)
    except Exception:
        saved_stdout = None

    try:
        report, code = collect()
    except Exception as exc:  # collect() guards each step; this is a last line of defence
        report, code = new_report(), EXIT_NOT_READY
        report["error"] = "unexpected failure: " + describe(exc)

    try:
        sys.stdout.flush()
    except Exception:
        pass
    if saved_stdout is not None:
        try:
            os.dup2(saved_stdout, 1)
            os.close(saved_stdout)
        except Exception:
            pass

    try:
        text = json.dumps(report, default=str)
    except Exception as exc:
        fallback = new_report()
        fallback["error"] = "cannot encode report: " + describe(exc)
        text, code = json.dumps(fallback), EXIT_NOT_READY
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except Exception:
        pass
    return code


if __name__ == "__main__":
    sys.exit(main())
