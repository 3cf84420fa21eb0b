"""The machine's whole vector unit for the kernels' loops.

LLVM tunes some CPUs that have 512-bit vectors (Intel's AVX-512 server parts) to prefer
256-bit ones, so Numba's loop vectoriser emits ymm code there and runs at half width.
:func:`full_width`, called at the top of a compiled function (and inside a ``prange`` body
that holds loops of its own), sets LLVM's ``"prefer-vector-width"`` attribute of that one
function to :data:`VECTOR_BITS`, the width of the machine Numba compiles for. It changes
nothing else: not the user's Numba code, not the process's target options. A function
compiled on its own (a :func:`fastcorr._kernels.shared` helper) needs its own call; an
inlined helper takes its caller's width. The on-disk cache is keyed on the CPU name and
features, so cached code never runs on a machine of another width.
"""

from __future__ import annotations

import llvmlite.binding as llvm
from numba import types
from numba.core import config
from numba.extending import intrinsic


def _vector_bits() -> int:
    """512 with AVX-512, 256 with AVX, else 128: for the CPU Numba compiles for."""
    features = config.CPU_FEATURES or llvm.get_host_cpu_features().flatten()
    enabled = {f[1:] for f in features.split(",") if f.startswith("+")}
    return 512 if "avx512f" in enabled else 256 if "avx" in enabled else 128


VECTOR_BITS = _vector_bits()


@intrinsic
def full_width(typingctx):
    """Let LLVM vectorise the calling function at :data:`VECTOR_BITS` (no code of its own)."""

    def codegen(context, builder, signature, args):
        # llvmlite's FunctionAttributes is a set that prints its members verbatim but whose
        # add() accepts only the names it knows; set.add stores LLVM's quoted string attribute.
        attributes = builder.function.attributes
        for old in [a for a in attributes if a.startswith('"prefer-vector-width"=')]:
            set.discard(attributes, old)
        set.add(attributes, f'"prefer-vector-width"="{VECTOR_BITS}"')
        return context.get_dummy_value()

    return types.none(), codegen
