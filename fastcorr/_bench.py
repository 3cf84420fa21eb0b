"""``python -m fastcorr bench``: fastcorr against scipy, OpenCV and torch, side by side.

Every case gives each implementation one turn per round, in turn, so that a slow moment
of the machine hits them all alike; a turn keeps the fastest of a burst of back-to-back
calls (:data:`TURN`), and the table shows medians over rounds and ratios of medians. Peers
that are not installed are left out. Two machine limits are measured in the same run:
``np.copyto`` of the image (memory) and a 2048x2048 float32 ``a @ a`` (compute).
"""

from __future__ import annotations

import datetime
import importlib
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numba
import numpy as np

import fastcorr as fc
from fastcorr._chapter import chapter_corr2d

#: (image side, kernel side) for single images; the 6x8 image with a 1x2 kernel is the chapter's.
SINGLE = [((6, 8), (1, 2)), ((64, 64), (3, 3)), ((512, 512), (3, 3)), ((512, 512), (5, 5)),
          ((1024, 1024), (3, 3)), ((2048, 2048), (3, 3)), ((2048, 2048), (5, 5)),
          ((4096, 4096), (3, 3)), ((1024, 1024), (15, 15))]
QUICK = [((6, 8), (1, 2)), ((64, 64), (3, 3)), ((512, 512), (3, 3)), ((2048, 2048), (3, 3)), ((1024, 1024), (15, 15))]
#: Large kernels, for correlate2d's 'valid' mode with method="auto" (which picks the FFT here).
LARGE = [((1024, 1024), (63, 63))]
#: Batched layers (N, C, H, W, O, k, padding), against torch.
BATCHED = [(64, 1, 28, 28, 6, 5, 0), (32, 16, 32, 32, 32, 3, 1), (8, 64, 56, 56, 64, 3, 1)]
#: Direct scipy.signal.correlate2d is skipped above this many multiply-adds (it would take minutes).
SCIPY_LIMIT = 3e9


@dataclass
class Case:
    label: str
    macs: float
    impls: dict[str, Callable[[], object]]
    #: (kernel, dtype, image pixels) of a single-image case, for the plot.
    point: tuple[str, str, int] | None = None
    #: Whether ``2 * macs / time`` is a real rate (an FFT does far fewer operations).
    direct: bool = True
    medians: dict[str, float] = field(default_factory=dict)


def _optional(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _time(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


#: Each turn calls one implementation back to back for at least this long (twice at
#: least) and keeps its fastest call. The first call of a turn pays for the previous
#: library's worker threads, which spin for milliseconds after returning (OpenMP's and
#: TBB's both do, and on 2 cores that halves the next call), and for waking idle cores.
TURN = 0.02


def _turn(func: Callable[[], object]) -> float:
    best, calls, end = _time(func), 1, time.perf_counter() + TURN
    while calls < 2 or time.perf_counter() < end:
        best = min(best, _time(func))
        calls += 1
    return best


def measure(case: Case, rounds: int, budget: float = 6.0) -> Case:
    """Interleaved rounds of turns (:data:`TURN`), medians of each turn's fastest call.

    An implementation whose turns would take longer than ``budget`` in all gets fewer rounds.
    """
    first = {name: _time(f) for name, f in case.impls.items()}
    allowed = {name: max(1, min(rounds, int(budget / max(2 * t, TURN)))) for name, t in first.items()}
    times: dict[str, list[float]] = {name: [] for name in case.impls}
    for r in range(rounds):
        for name, f in case.impls.items():
            if r < allowed[name]:
                times[name].append(_turn(f))
    case.medians = {name: statistics.median(t) for name, t in times.items()}
    return case


def single_impls(x: np.ndarray, k: np.ndarray, more: bool = False) -> dict[str, Callable[[], object]]:
    """The same 'valid' correlation of ``x`` with ``k`` by fastcorr and each installed peer.

    ``more`` adds fastcorr's serial kernel, the chapter's loops (small images only),
    ``scipy.ndimage.correlate`` and ``scipy.signal.fftconvolve``.
    """
    from fastcorr._kernels import corr

    out = np.empty((x.shape[0] - k.shape[0] + 1, x.shape[1] - k.shape[1] + 1), x.dtype)
    impls: dict[str, Callable[[], object]] = {"fastcorr": lambda: fc.corr2d(x, k)}
    if more:
        impls["fastcorr serial"] = lambda: corr.correlate.serial(x, k, out, 0, 0, corr.FILL, out.dtype.type(0))
        if x.size <= 64 * 64:
            impls["chapter loops"] = lambda: chapter_corr2d(x, k)
    signal, ndimage = _optional("scipy.signal"), _optional("scipy.ndimage")
    if signal is not None:
        if out.size * k.size <= SCIPY_LIMIT:
            impls["scipy"] = lambda: signal.correlate2d(x, k, "valid")
        if more:
            impls["scipy.ndimage"] = lambda: ndimage.correlate(x, k, mode="constant")
            impls["scipy fftconvolve"] = lambda: signal.fftconvolve(x, k[::-1, ::-1], "valid")
    cv2 = _optional("cv2")
    if cv2 is not None:
        impls["cv2"] = lambda: cv2.filter2D(x, -1, k)
    torch = _optional("torch")
    if torch is not None:
        tx, tk = torch.from_numpy(x)[None, None], torch.from_numpy(k)[None, None]
        impls["torch"] = lambda: torch.nn.functional.conv2d(tx, tk)
    if x.size >= 1 << 20:
        copy = np.empty_like(x)
        impls["np.copyto"] = lambda: np.copyto(copy, x)
    return impls


def single_cases(sizes, dtype) -> list[Case]:
    rng = np.random.default_rng(0)
    cases = []
    for (h, w), (kh, kw) in sizes:
        x = rng.standard_normal((h, w)).astype(dtype)
        k = rng.standard_normal((kh, kw)).astype(dtype)
        name = np.dtype(dtype).name
        macs = (h - kh + 1) * (w - kw + 1) * kh * kw
        cases.append(Case(f"{h}x{w} {kh}x{kw} {name}", macs, single_impls(x, k), (f"{kh}x{kw}", name, h * w)))
    return cases


def large_kernel_cases(dtype) -> list[Case]:
    """``correlate2d(x, k, 'valid')`` against scipy's FFT and overlap-add convolutions and cv2."""
    signal, cv2 = _optional("scipy.signal"), _optional("cv2")
    rng = np.random.default_rng(0)
    cases = []
    for (h, w), (kh, kw) in LARGE:
        x = rng.standard_normal((h, w)).astype(dtype)
        k = rng.standard_normal((kh, kw)).astype(dtype)
        flipped = k[::-1, ::-1]
        impls: dict[str, Callable[[], object]] = {"fastcorr": lambda x=x, k=k: fc.correlate2d(x, k, "valid")}
        if signal is not None:
            impls["scipy fftconvolve"] = lambda x=x, f=flipped: signal.fftconvolve(x, f, "valid")
            impls["scipy oaconvolve"] = lambda x=x, f=flipped: signal.oaconvolve(x, f, "valid")
        if cv2 is not None:
            impls["cv2"] = lambda x=x, k=k: cv2.filter2D(x, -1, k)
        macs = (h - kh + 1) * (w - kw + 1) * kh * kw
        cases.append(Case(f"{h}x{w} {kh}x{kw} valid {np.dtype(dtype).name}", macs, impls, direct=False))
    return cases


def batched_cases(dtype, layers=None) -> list[Case]:
    """conv2d forward, and forward + both gradients, against torch's, for each of ``layers`` (:data:`BATCHED`)."""
    torch = _optional("torch")
    if torch is None:
        return []
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    cases = []
    for n, c, h, w, o, k, pad in BATCHED if layers is None else layers:
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
        weight = rng.standard_normal((o, c, k, k)).astype(dtype)
        y = fc.conv2d(x, weight, padding=pad)
        dy = rng.standard_normal(y.shape).astype(dtype)
        tx, tw, tdy = torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(dy)

        def ours(x=x, weight=weight, dy=dy, pad=pad):
            fc.conv2d(x, weight, padding=pad)
            fc.conv2d_input_grad(x.shape, weight, dy, padding=pad)
            fc.conv2d_weight_grad(x, weight.shape, dy, padding=pad)

        def theirs(tx=tx, tw=tw, tdy=tdy, pad=pad):
            F.conv2d(tx, tw, padding=pad)
            torch.nn.grad.conv2d_input(tx.shape, tw, tdy, padding=pad)
            torch.nn.grad.conv2d_weight(tx, tw.shape, tdy, padding=pad)

        label = f"N{n} C{c} {h}x{w} O{o} {k}x{k} pad {pad} {np.dtype(dtype).name}"
        macs = y.size * c * k * k
        cases.append(Case(f"{label} forward", macs, {
            "fastcorr": lambda x=x, weight=weight, pad=pad: fc.conv2d(x, weight, padding=pad),
            "torch": lambda tx=tx, tw=tw, pad=pad: F.conv2d(tx, tw, padding=pad)}))
        cases.append(Case(f"{label} fwd+grads", 3 * macs, {"fastcorr": ours, "torch": theirs}))
    return cases


def training_step_case() -> list[Case]:
    """The chapter's step on the 6x8 image: forward, backward, SGD update."""
    torch = _optional("torch")
    if torch is None:
        return []
    X = np.ones((1, 1, 6, 8), np.float32)
    X[..., 2:6] = 0
    Y = fc.corr2d(X[0, 0], [[1.0, -1.0]]).reshape(1, 1, 6, 7)
    layer = fc.Conv2D((1, 2), bias=False)
    opt = fc.SGD(layer.parameters(), lr=3e-2)
    tlayer = torch.nn.Conv2d(1, 1, (1, 2), bias=False)
    topt = torch.optim.SGD(tlayer.parameters(), lr=3e-2)
    tX, tY = torch.from_numpy(X), torch.from_numpy(Y)

    def ours():
        Y_hat = layer(X)
        opt.zero_grad()
        layer.backward(2 * (Y_hat - Y))
        opt.step()

    def theirs():
        loss = ((tlayer(tX) - tY) ** 2).sum()
        topt.zero_grad()
        loss.backward()
        topt.step()

    return [Case("training step 6x8 1x2 float32", 42 * 2, {"fastcorr": ours, "torch": theirs})]


def gemm_rate(rounds: int = 5) -> float:
    """GFLOP/s of a 2048x2048 float32 matrix product (BLAS, all cores)."""
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    a @ a
    return 2 * 2048**3 / statistics.median(_time(lambda: a @ a) for _ in range(rounds)) / 1e9


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = [f"numpy {np.__version__}", f"numba {numba.__version__}"]
    for name in ("scipy", "cv2", "torch"):
        module = _optional(name)
        if module is not None:
            versions.append(f"{name} {module.__version__}")
    return (f"{datetime.date.today()}, {model}, {os.cpu_count()} cores, "
            f"{numba.config.NUMBA_NUM_THREADS} threads; " + ", ".join(versions))


def table(cases: list[Case]) -> str:
    """Medians in ms and, per peer, fastcorr's time as a fraction of the peer's."""
    order = ["fastcorr serial", "chapter loops", "scipy", "scipy.ndimage", "scipy fftconvolve", "scipy oaconvolve",
             "cv2", "torch", "np.copyto"]
    peers = sorted({name for case in cases for name in case.impls} - {"fastcorr"}, key=order.index)
    head = "| case | fastcorr ms | " + " | ".join(f"{p} ms (fastcorr/{p})" for p in peers) + " |"
    rows = [head, "|" + "---|" * (2 + len(peers))]
    for case in cases:
        ours = case.medians["fastcorr"]
        cells = []
        for peer in peers:
            t = case.medians.get(peer)
            cells.append("" if t is None else f"{t * 1e3:.3f} ({ours / t:.2f}x)")
        rows.append(f"| {case.label} | {ours * 1e3:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot(cases: list[Case], path: str) -> None:
    """Speed-up over each peer against image size, one panel per kernel size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    single = [c for c in cases if c.point]
    kernels = sorted({c.point[0] for c in single}, key=lambda k: int(k.split("x")[0]))
    fig, axes = plt.subplots(1, len(kernels), figsize=(4 * len(kernels), 3.5), squeeze=False)
    for ax, kernel in zip(axes[0], kernels):
        for peer, dtype in [(p, d) for p in ("scipy", "cv2", "torch") for d in ("float32", "float64")]:
            points = [(c.point[2], c.medians[peer] / c.medians["fastcorr"]) for c in single
                      if c.point[:2] == (kernel, dtype) and peer in c.medians]
            if points:
                ax.plot(*zip(*sorted(points)), marker="o", label=f"{peer} {dtype}",
                        linestyle="-" if dtype == "float32" else "--")
        ax.axhline(1, color="grey", lw=0.8)
        ax.set(xscale="log", yscale="log", title=f"kernel {kernel}", xlabel="image pixels",
               ylabel="speed-up of fastcorr (peer time / fastcorr time)")
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run(quick: bool = False, rounds: int = 9, plot_path: str | None = None, echo=print) -> list[Case]:
    echo(f"fastcorr bench: {machine()}; threading layer {numba.config.THREADING_LAYER}")
    cases = []
    for dtype in (np.float32, np.float64):
        for case in single_cases(QUICK if quick else SINGLE, dtype) + large_kernel_cases(dtype):
            cases.append(measure(case, rounds))
    torch = _optional("torch")
    if torch is not None:
        torch.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        for dtype in (np.float32, np.float64):
            cases += [measure(case, rounds) for case in batched_cases(dtype)]
        cases += [measure(case, rounds) for case in training_step_case()]
    echo(table(cases))
    # Last: BLAS threads keep spinning for a while after a product and would slow what follows.
    gemm = gemm_rate()
    echo(f"GEMM reference: {gemm:.0f} GFLOP/s (2048x2048 float32 a @ a)")
    for case in cases:
        if case.macs >= 1e8 and case.direct:
            rate = 2 * case.macs / case.medians["fastcorr"] / 1e9
            echo(f"{case.label}: fastcorr {rate:.1f} GFLOP/s, {rate / gemm:.0%} of GEMM")
    if plot_path:
        if _optional("matplotlib") is None:
            echo("--plot needs matplotlib: pip install matplotlib")
        else:
            plot(cases, plot_path)
            echo(f"wrote {plot_path}")
    return cases
