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
#: fastcorr.ndimage.correlate (mode 'reflect') against scipy.ndimage: (image shape, kernel shape).
NDIMAGE = [((2048, 2048), (3, 3)), ((2048, 2048), (5, 5)), ((128, 128, 128), (3, 3, 3))]
#: An H x W x 3 colour image with a 3x3 kernel, plane by plane ('mirror', OpenCV's default border).
COLOUR = ((1024, 1024, 3), (3, 3))
#: A chunked image for fastcorr.dask against dask_image: (shape, chunks, kernel shape).
DASK_IMAGE = ((4096, 4096), (1024, 1024), (5, 5))
#: Direct scipy.signal.correlate2d is skipped above this many multiply-adds (it would take minutes).
SCIPY_LIMIT = 3e9


@dataclass
class Case:
    label: str
    macs: float
    impls: dict[str, Callable[[], object]]
    #: Where the plot shows the case: (panel kind, "image" or "layer"; row label; dtype).
    row: tuple[str, str, str] | None = None
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
        rect, interior = corr.plan(x.dtype, x.shape, k.shape, out.shape, 0, 0)  # 'valid': all interior, or all border
        if interior is None:
            columns = corr.strip_columns(x.shape[1], out.shape[1], k.shape[1], 0, 0, 0, corr.FILL)
            impls["fastcorr serial"] = lambda: corr.border.serial(x, k, out, 0, 0, corr.FILL, out.dtype.type(0),
                                                                  *rect, columns, False, out.shape[0])
        else:
            impls["fastcorr serial"] = lambda: interior.serial(x, k, out, *rect, 0, 0, out.shape[0])
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


def _side(h: int, w: int) -> str:
    return f"{h}²" if h == w else f"{h}×{w}"


def single_cases(sizes, dtype) -> list[Case]:
    rng = np.random.default_rng(0)
    cases = []
    for (h, w), (kh, kw) in sizes:
        x = rng.standard_normal((h, w)).astype(dtype)
        k = rng.standard_normal((kh, kw)).astype(dtype)
        name = np.dtype(dtype).name
        macs = (h - kh + 1) * (w - kw + 1) * kh * kw
        cases.append(Case(f"{h}x{w} {kh}x{kw} {name}", macs, single_impls(x, k),
                          row=("image", f"{_side(h, w)}, {kh}×{kw}", name)))
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

        name = np.dtype(dtype).name
        label = f"N{n} C{c} {h}x{w} O{o} {k}x{k} pad {pad} {name}"
        row = f"N{n} C{c} {_side(h, w)} O{o} {k}×{k}"
        macs = y.size * c * k * k
        cases.append(Case(f"{label} forward", macs, {
            "fastcorr": lambda x=x, weight=weight, pad=pad: fc.conv2d(x, weight, padding=pad),
            "torch": lambda tx=tx, tw=tw, pad=pad: F.conv2d(tx, tw, padding=pad)},
            row=("layer", f"{row}, forward", name)))
        cases.append(Case(f"{label} fwd+grads", 3 * macs, {"fastcorr": ours, "torch": theirs},
                          row=("layer", f"{row}, + both grads", name)))
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

    return [Case("training step 6x8 1x2 float32", 42 * 2, {"fastcorr": ours, "torch": theirs},
                 row=("layer", "training step, 6×8, 1×2", "float32"))]


def ndimage_cases(dtype, quick: bool = False) -> list[Case]:
    """``fastcorr.ndimage.correlate`` against ``scipy.ndimage.correlate`` (images and a volume,
    mode 'reflect'), OpenCV's ``filter2D`` on a colour image ('mirror', OpenCV's default
    border), and ``fastcorr.dask.ndimage_correlate`` against ``dask_image`` when installed."""
    import fastcorr.ndimage as fnd

    ndimage, cv2 = _optional("scipy.ndimage"), _optional("cv2")
    rng = np.random.default_rng(0)
    name = np.dtype(dtype).name
    cases = []
    for shape, kshape in NDIMAGE[:1] if quick else NDIMAGE:
        if len(shape) == 3 and dtype != np.float32:
            continue
        x = rng.standard_normal(shape).astype(dtype)
        w = rng.standard_normal(kshape).astype(dtype)
        impls: dict[str, Callable[[], object]] = {"fastcorr": lambda x=x, w=w: fnd.correlate(x, w)}
        if ndimage is not None:
            impls["scipy.ndimage"] = lambda x=x, w=w: ndimage.correlate(x, w)
        label = "x".join(map(str, shape)) + " " + "x".join(map(str, kshape))
        cases.append(Case(f"ndimage {label} {name}", float(np.prod(shape) * np.prod(kshape)), impls))
    shape, kshape = COLOUR
    image = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(kshape).astype(dtype)
    impls = {"fastcorr": lambda: fnd.correlate(image, w, mode="mirror", axes=(0, 1))}
    if cv2 is not None:
        impls["cv2"] = lambda: cv2.filter2D(image, -1, w)
    if ndimage is not None and not quick:
        impls["scipy.ndimage"] = lambda: ndimage.correlate(image, w, mode="mirror", axes=(0, 1))
    cases.append(Case(f"ndimage {shape[0]}x{shape[1]}x{shape[2]} colour 3x3 mirror {name}",
                      float(np.prod(shape) * np.prod(kshape)), impls))
    dask_image = _optional("dask_image.ndfilters")
    if dask_image is not None and not quick:
        import dask.array as da

        import fastcorr.dask as fcd

        shape, chunks, kshape = DASK_IMAGE
        lazy = da.from_array(rng.standard_normal(shape).astype(dtype), chunks=chunks)
        w = rng.standard_normal(kshape).astype(dtype)
        cases.append(Case(f"dask {shape[0]}x{shape[1]} in {chunks[0]}x{chunks[1]} chunks {kshape[0]}x{kshape[1]} {name}",
                          float(np.prod(shape) * np.prod(kshape)), {
                              "fastcorr": lambda: fcd.ndimage_correlate(lazy, w).compute(scheduler="threads"),
                              "dask_image": lambda: dask_image.correlate(lazy, w).compute(scheduler="threads")}))
    return cases


def gemm_rate(dtype=np.float32, rounds: int = 5) -> float:
    """GFLOP/s of a 2048x2048 matrix product of ``dtype`` (BLAS, all cores)."""
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(dtype)
    a @ a
    return 2 * 2048**3 / statistics.median(_time(lambda: a @ a) for _ in range(rounds)) / 1e9


#: Intel server generations (family 6) by model number, which a virtual machine's model name may not give.
INTEL_MODELS = {85: "Skylake-SP/Cascade Lake", 106: "Ice Lake-SP", 143: "Sapphire Rapids", 173: "Granite Rapids",
                207: "Emerald Rapids"}


def cpu(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name, with its generation, family and model numbers and widest vector unit where known."""
    fields: dict[str, str] = {}
    try:
        with open(cpuinfo) as info:
            for line in info:
                key, _, value = line.partition(":")
                if not line.strip():
                    break
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    details = []
    try:
        family, model = int(fields["cpu family"]), int(fields["model"])
    except (KeyError, ValueError):
        family = model = -1
    vendor = fields.get("vendor_id")
    if vendor == "GenuineIntel" and family == 6 and model in INTEL_MODELS:
        details.append(INTEL_MODELS[model])
    elif vendor == "AuthenticAMD" and family in (0x17, 0x19, 0x1A):
        zen4 = family == 0x19 and model >> 4 in (0x1, 0x6, 0x7, 0xA)
        details.append({0x17: "Zen 2" if model >= 0x30 else "Zen", 0x19: "Zen 4" if zen4 else "Zen 3",
                        0x1A: "Zen 5"}[family])
    if family >= 0:
        details.append(f"family {family} model {model}")
    flags = set(fields.get("flags", "").split())
    if "avx512f" in flags:
        details.append("AVX-512")
    elif "avx2" in flags:
        details.append("AVX2")
    return f"{name} ({', '.join(details)})" if details else name


def machine() -> str:
    """Date, CPU, cores, threads and memory; then the versions of fastcorr's stack and each installed peer."""
    try:
        memory = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        memory = ""
    try:
        layer = f" ({numba.threading_layer()} layer)"
    except ValueError:
        layer = ""
    versions = [f"numpy {np.__version__}", f"numba {numba.__version__}{layer}"]
    for name, shown in (("scipy", "scipy"), ("cv2", "OpenCV"), ("torch", "torch")):
        module = _optional(name)
        if module is not None:
            versions.append(f"{shown} {module.__version__}")
    threads = numba.config.NUMBA_NUM_THREADS
    return (f"{datetime.date.today()}, {cpu()}, {os.cpu_count()} cores, {threads} thread{'s' if threads > 1 else ''}"
            f"{memory}; " + ", ".join(versions))


def table(cases: list[Case]) -> str:
    """Medians in ms and, per peer, fastcorr's time as a fraction of the peer's."""
    order = ["fastcorr serial", "chapter loops", "scipy", "scipy.ndimage", "scipy fftconvolve", "scipy oaconvolve",
             "cv2", "torch", "dask_image", "np.copyto"]
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


#: The peers of single images, in panel order, with what the plot calls them.
PLOT_PEERS = {"scipy": "scipy.signal.correlate2d", "cv2": "OpenCV filter2D", "torch": "torch conv2d"}


def plot(cases: list[Case], path: str, about: str | None = None):
    """How many times faster fastcorr is than each peer, case by case; returns the figure.

    One panel per installed peer for single images (float32 and float64 bars side by side),
    one panel for the batched layers against torch; log-scale ratio axis, bars from the 1x line.
    ``about`` (date, machine, versions: :func:`machine`) goes under the panels.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    def ratios(kind, peer):
        found: dict[str, dict[str, float]] = {}
        for case in cases:
            if case.row and case.row[0] == kind and peer in case.medians and "fastcorr" in case.medians:
                found.setdefault(case.row[1], {})[case.row[2]] = case.medians[peer] / case.medians["fastcorr"]
        return found

    top = [(f"vs {shown}", ratios("image", peer)) for peer, shown in PLOT_PEERS.items()]
    top = [(title, data) for title, data in top if data]
    shown_rows = {label for _, data in top for label in data}
    image_rows = list(dict.fromkeys(c.row[1] for c in cases if c.row and c.row[1] in shown_rows))
    layers = ratios("layer", "torch")
    every = [r for _, data in top + [("", layers)] for values in data.values() for r in values.values()]
    if not every:
        raise ValueError("no case has fastcorr and a peer to compare")
    low, high = min(min(every), 1.0) / 4, max(max(every), 1.0) * 5

    fig = Figure(figsize=(8, 1.6 + 0.25 * (len(image_rows) + 1.1 * len(layers) + (2 if layers else 0))),
                 dpi=110, layout="constrained")
    grid = fig.add_gridspec(2 if top and layers else 1, max(1, len(top)),
                            height_ratios=[len(image_rows) + 1, len(layers) + 1] if top and layers else None)
    panels = []
    for i, (title, data) in enumerate(top):
        ax = fig.add_subplot(grid[0, i], sharey=panels[0][0] if panels else None)
        panels.append((ax, title, image_rows, data))
    if layers:
        ax = fig.add_subplot(grid[-1, :])
        panels.append((ax, "conv2d on NCHW batches, and the chapter's training step, vs torch", list(layers), layers))
    colours = {"float32": ("#1b7837", "#b2182b"), "float64": ("#7fbf7b", "#f4a582")}
    for n, (ax, title, labels, data) in enumerate(panels):
        for y, label in enumerate(labels):
            for j, (dtype, (win, lose)) in enumerate(colours.items()):
                ratio = data.get(label, {}).get(dtype)
                if ratio is None:
                    continue
                pos = y + (j - 0.5) * 0.4
                ax.barh(pos, ratio - 1, left=1, height=0.38, color=win if ratio >= 1 else lose)
                text = f"{ratio:.0f}×" if ratio >= 9.5 else f"{ratio:.1f}×"
                ax.text(ratio * 1.1 if ratio >= 1 else ratio / 1.1, pos, text, va="center",
                        ha="left" if ratio >= 1 else "right", fontsize=6.5)
        ax.set_yticks(range(len(labels)), labels, fontsize=7.5)
        ax.set_ylim(len(labels) - 0.4, -0.6)
        if 0 < n < len(top):
            ax.tick_params(labelleft=False)
        ax.set_xscale("log")
        ax.set_xlim(low, high)
        ax.xaxis.set_major_formatter(lambda value, _: f"{value:g}×")
        ax.tick_params(axis="x", labelsize=7)
        ax.axvline(1, color="black", lw=0.8)
        ax.grid(axis="x", color="0.9", lw=0.6)
        ax.set_axisbelow(True)
        ax.set_title(title, fontsize=8.5)
        if n == 0 or n == len(top):
            ax.set_ylabel("image, kernel" if n < len(top) else "N batch, C in, O out", fontsize=7.5)
    legend = [Patch(color=colours[d][k], label=f"{d}, {who} faster")
              for k, who in enumerate(["fastcorr", "peer"]) for d in colours]
    fig.legend(handles=legend, loc="outside upper center", ncols=4, fontsize=7, frameon=False,
               title="How many times faster fastcorr is: the peer's time / fastcorr's (log scale)", title_fontsize=10)
    if about:
        fig.supxlabel(about.replace("; ", "\n"), fontsize=7, color="0.3")
    fig.savefig(path)
    return fig


def run(quick: bool = False, rounds: int = 9, plot_path: str | None = None, echo=print) -> list[Case]:
    echo(f"fastcorr bench: {machine()}")
    cv2, torch = _optional("cv2"), _optional("torch")
    if cv2 is not None:
        cv2.setNumThreads(numba.config.NUMBA_NUM_THREADS)
    if torch is not None:
        torch.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    cases = []
    for dtype in (np.float32, np.float64):
        for case in single_cases(QUICK if quick else SINGLE, dtype) + large_kernel_cases(dtype):
            cases.append(measure(case, rounds))
    for dtype in (np.float32, np.float64):
        cases += [measure(case, rounds) for case in ndimage_cases(dtype, quick)]
    if torch is not None:
        for dtype in (np.float32, np.float64):
            cases += [measure(case, rounds) for case in batched_cases(dtype)]
        cases += [measure(case, rounds) for case in training_step_case()]
    echo(table(cases))
    try:
        echo(f"threading layer: {numba.threading_layer()}")
    except ValueError:  # no parallel kernel ran
        pass
    # Last: BLAS threads keep spinning for a while after a product and would slow what follows.
    gemm = {name: gemm_rate(name) for name in ("float32", "float64")}
    echo("GEMM reference: " + ", ".join(f"{rate:.0f} GFLOP/s {name}" for name, rate in gemm.items())
         + " (2048x2048 a @ a)")
    for case in cases:
        if case.macs >= 1e8 and case.direct:
            rate = 2 * case.macs / case.medians["fastcorr"] / 1e9
            name = "float64" if "float64" in case.label else "float32"
            echo(f"{case.label}: fastcorr {rate:.1f} GFLOP/s, {rate / gemm[name]:.0%} of the {name} GEMM")
    if plot_path:
        if _optional("matplotlib") is None:
            echo("--plot needs matplotlib: pip install matplotlib")
        else:
            try:
                plot(cases, plot_path, machine())
                echo(f"wrote {plot_path}")
            except ValueError as error:
                echo(f"no plot: {error}")
    return cases
