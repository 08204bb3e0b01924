"""This machine's LLVM target, and the child-process compiler of :mod:`iomt_ids.models.codegen`.

Kept free of NumPy and the rest of the package so that the compiler child
(``python -m iomt_ids.models.llvm_host LEVEL``: LLVM IR on stdin, an object file on
stdout) starts in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

__all__ = ["host_key", "llvm", "native_target_machine"]


def llvm() -> Any:
    """``llvmlite.binding`` with the native target initialised (ImportError when llvmlite is missing)."""
    import llvmlite.binding as binding

    with contextlib.suppress(AttributeError, RuntimeError):  # llvmlite >= 0.45 initialises itself
        binding.initialize_native_target()
        binding.initialize_native_asmprinter()
    return binding


def _features(binding: Any) -> str:
    try:
        return str(binding.get_host_cpu_features().flatten())
    except RuntimeError:
        return ""


def native_target_machine(level: int) -> Any:
    """A target machine for this CPU (its name and features) generating code at ``level`` (0-3)."""
    binding = llvm()
    target = binding.Target.from_default_triple()
    return target.create_target_machine(
        cpu=binding.get_host_cpu_name(), features=_features(binding), opt=level
    )


def host_key(level: int) -> dict[str, str]:
    """What machine code compiled here depends on: LLVM, the target triple, the CPU and its features, the level."""
    import llvmlite

    binding = llvm()
    return {
        "llvmlite": str(llvmlite.__version__),
        "llvm": ".".join(str(v) for v in binding.llvm_version_info),
        "triple": str(binding.get_default_triple()),
        "cpu": str(binding.get_host_cpu_name()),
        "features": _features(binding),
        "codegen_level": str(int(level)),
    }


def _compile_stdin(level: int) -> int:
    """Parse and verify the IR on stdin, write the object file for this CPU at ``level`` to stdout."""
    binding = llvm()
    module = binding.parse_assembly(sys.stdin.buffer.read().decode("ascii"))
    module.verify()
    sys.stdout.buffer.write(native_target_machine(level).emit_object(module))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_compile_stdin(int(sys.argv[1])))
