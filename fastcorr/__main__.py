"""``python -m fastcorr demo`` replays the chapter "Convolutional layer"; ``bench`` times fastcorr against its peers."""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import fastcorr as fc
from fastcorr._chapter import chapter_corr2d


def _median_seconds(func, rounds):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _show(title, array):
    print(f"{title}\n{np.array2string(np.asarray(array), precision=3, suppress_small=True)}\n")


def edge_image() -> np.ndarray:
    """The chapter's 6x8 image: white (1) sides, black (0) middle columns."""
    image = np.ones((6, 8), np.float32)
    image[:, 2:6] = 0
    return image


def diagonal_image() -> np.ndarray:
    """An 8x8 image, white on and above the diagonal, black below it."""
    return np.triu(np.ones((8, 8), np.float32))


#: For each edge direction: the image and the kernel that detects its edges.
EDGES = {
    "vertical": (edge_image, [[1.0, -1.0]]),
    "horizontal": (lambda: edge_image().T.copy(), [[1.0], [-1.0]]),
    "diagonal": (diagonal_image, [[0.0, 1.0], [-1.0, 0.0]]),
}


def examples(size: int = 256, rounds: int = 3) -> None:
    """Print the chapter's examples and time its loops against fastcorr."""
    X = np.arange(9.0, dtype=np.float32).reshape(3, 3)  # float32, as the chapter's tensors
    K = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)
    _show("X = arange(9).reshape(3, 3); K = [[0, 1], [2, 3]]; corr2d(X, K) =", fc.corr2d(X, K))

    image = edge_image()
    edge = np.array([[1.0, -1.0]], np.float32)
    _show("Edge detection: a 6x8 image, white sides, black middle columns", image)
    _show("corr2d(image, [[1, -1]]): 1 at white-to-black, -1 at black-to-white", fc.corr2d(image, edge))
    _show("corr2d(image.T, [[1, -1]]): the vertical-edge kernel sees nothing in the transposed image",
          fc.corr2d(image.T, edge))
    _show("corr2d(image.T, [[1], [-1]]): the transposed kernel finds the horizontal edges",
          fc.corr2d(image.T, edge.T))

    rng = np.random.default_rng(0)
    big = rng.standard_normal((size, size)).astype(np.float32)
    kernel = rng.standard_normal((3, 3)).astype(np.float32)
    fc.corr2d(big, kernel)
    np.testing.assert_allclose(fc.corr2d(big, kernel), chapter_corr2d(big, kernel), rtol=1e-4, atol=1e-4)
    loops = _median_seconds(lambda: chapter_corr2d(big, kernel), rounds)
    fast = _median_seconds(lambda: fc.corr2d(big, kernel), max(rounds, 20))
    print(f"Timing a {size}x{size} float32 image with a 3x3 kernel (median of runs, same process):")
    print(f"  chapter's Python loops  {loops * 1e3:10.3f} ms")
    print(f"  fastcorr.corr2d         {fast * 1e3:10.3f} ms")
    print(f"  fastcorr is {loops / fast:,.0f}x faster, with the same result")


CHAPTER_LR = 3e-2


def train(edges: str = "vertical", kernel_size: tuple[int, int] | None = None, epochs: int = 10,
          lr: float | None = None, seed: int = 0, plot: str | None = None) -> np.ndarray:
    """Learn the edge kernel back from the image and its edges, as the chapter does.

    A ``Conv2D`` layer with weights drawn uniformly from [-0.07, 0.07] and a zero bias;
    summed squared error; ``lr`` times the weight's gradient subtracted each iteration
    (the bias is not updated). The default ``lr`` is the chapter's 0.03 where that
    converges; gradient descent on this loss diverges once ``lr`` exceeds ``2 / L``,
    ``L`` the largest curvature, so a larger kernel or busier image gets ``1 / L``.
    Returns the learned kernel.
    """
    make_image, true_kernel = EDGES[edges]
    X = make_image()
    K = np.array(true_kernel, np.float32)
    shape = tuple(kernel_size or K.shape)
    if shape[0] < K.shape[0] or shape[1] < K.shape[1]:
        raise ValueError(f"a {shape[0]}x{shape[1]} kernel cannot hold the {edges} edge kernel of shape {K.shape}")
    target = np.zeros(shape, np.float32)
    target[: K.shape[0], : K.shape[1]] = K
    Y = fc.corr2d(X, target).reshape(1, 1, -1, X.shape[1] - shape[1] + 1)
    X4 = X.reshape(1, 1, *X.shape)

    if lr is None:
        patches = np.lib.stride_tricks.sliding_window_view(X, shape).reshape(-1, shape[0] * shape[1])
        curvature = 2 * np.linalg.eigvalsh(patches.T.astype(np.float64) @ patches).max()
        lr = CHAPTER_LR if CHAPTER_LR < 2 / curvature else 1 / curvature
        if lr != CHAPTER_LR:
            print(f"(lr {CHAPTER_LR} diverges here, it must stay below 2/L = {2 / curvature:.4f}; using 1/L)")

    layer = fc.Conv2D(shape)
    rng = np.random.default_rng(seed)
    layer.weight.data = rng.uniform(-0.07, 0.07, layer.weight.shape)
    layer.bias.data[:] = 0
    print(f"Training a {shape[0]}x{shape[1]} kernel to find {edges} edges: squared error, lr {lr:.4g}, {epochs} iterations")
    for i in range(epochs):
        Y_hat = layer(X4)
        loss = (Y_hat - Y) ** 2
        layer.zero_grad()
        layer.backward(2 * (Y_hat - Y))
        layer.weight.data -= lr * layer.weight.grad
        print(f"epoch {i + 1}, loss {loss.sum():.3f}")
    learned = layer.weight.data[0, 0].copy()
    _show(f"\nlearned kernel (the {edges} edge kernel is {np.array2string(target, precision=3)})", learned)
    if plot:
        _plot(plot, X, Y[0, 0], layer(X4)[0, 0], edges)
    return learned


def _plot(path: str, image: np.ndarray, edges: np.ndarray, learned: np.ndarray, name: str) -> None:
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install matplotlib (or pip install 'fastcorr[bench]')") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), layout="constrained")
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("image")
    for ax, (title, data) in zip(axes[1:], [(f"{name} edges (target)", edges), ("learned kernel's output", learned)]):
        shown = ax.imshow(data, cmap="coolwarm", vmin=-1, vmax=1)
        ax.set_title(title)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=axes[1:], shrink=0.8)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def _kernel_size(text: str) -> tuple[int, int]:
    try:
        kh, kw = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 2x2, got {text!r}") from None
    if kh < 1 or kw < 1:
        raise argparse.ArgumentTypeError(f"kernel sides must be at least 1, got {text!r}")
    return kh, kw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastcorr", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="replay the chapter's examples and timing")
    demo_parser.add_argument("--size", type=int, default=256, help="image side for the timing (default 256)")
    demo_parser.add_argument("--rounds", type=int, default=3, help="timed runs of the Python loops (default 3)")
    demo_parser.add_argument("--edges", choices=sorted(EDGES), default="vertical",
                             help="which edges the training replay learns to find (default vertical)")
    demo_parser.add_argument("--kernel", type=_kernel_size, metavar="HxW",
                             help="shape of the learned kernel, e.g. 2x2 (default: the edge kernel's shape)")
    demo_parser.add_argument("--epochs", type=int, default=10, help="training iterations (default 10)")
    demo_parser.add_argument("--lr", type=float, help="learning rate (default 0.03, the chapter's, where it converges)")
    demo_parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights (default 0)")
    demo_parser.add_argument("--plot", metavar="FILE.png", help="draw the image, its edges and the learned kernel's output")
    bench_parser = commands.add_parser("bench", help="time fastcorr against scipy, OpenCV and torch side by side")
    bench_parser.add_argument("--quick", action="store_true", help="fewer cases")
    bench_parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds per case (default 9)")
    bench_parser.add_argument("--plot", metavar="FILE.png", help="draw speed-up against image size")
    warmup_parser = commands.add_parser(
        "warmup", help="compile and cache every kernel for this machine (container builds, cluster workers)")
    warmup_parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"], metavar="DTYPE",
                               help="dtypes to compile for (default: float32 float64)")
    args = parser.parse_args(argv)
    if args.command == "warmup":
        try:
            dtypes = [np.dtype(name) for name in args.dtypes]
        except TypeError as exc:
            parser.error(f"--dtypes: {exc}")
        fc.warmup(dtypes, progress=True)
        print(f"compiled and cached every kernel for {', '.join(map(str, dtypes))}")
        return 0
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.command == "bench":
        from fastcorr import _bench

        _bench.run(args.quick, args.rounds, args.plot)
        return 0
    if args.size < 3 or args.epochs < 1:
        parser.error("--size must be at least 3 and --epochs at least 1")
    edge_kernel = np.shape(EDGES[args.edges][1])
    if args.kernel and (args.kernel[0] < edge_kernel[0] or args.kernel[1] < edge_kernel[1]):
        parser.error(f"--kernel {args.kernel[0]}x{args.kernel[1]} is smaller than the {args.edges} edge kernel "
                     f"{edge_kernel[0]}x{edge_kernel[1]}")
    examples(args.size, args.rounds)
    train(args.edges, args.kernel, args.epochs, args.lr, args.seed, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
