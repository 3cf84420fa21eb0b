"""``python -m fastcorr demo`` replays the chapter "Convolutional layer"; ``bench`` times fastcorr against its peers."""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import fastcorr as fc


def chapter_corr2d(X, K):
    """The chapter's two Python loops."""
    h, w = K.shape
    Y = np.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1), dtype=np.result_type(X, K))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i : i + h, j : j + w] * K).sum()
    return Y


def _median_seconds(func, rounds):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _show(title, array):
    print(f"{title}\n{np.array2string(np.asarray(array), precision=3, suppress_small=True)}\n")


def demo(size: int = 256, rounds: int = 3) -> None:
    """Print the chapter's examples and time its loops against fastcorr."""
    X = np.arange(9.0).reshape(3, 3)
    K = np.array([[0.0, 1.0], [2.0, 3.0]])
    _show("X = arange(9).reshape(3, 3); K = [[0, 1], [2, 3]]; corr2d(X, K) =", fc.corr2d(X, K))

    image = np.ones((6, 8), np.float32)
    image[:, 2:6] = 0
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastcorr", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="replay the chapter's examples and timing")
    demo_parser.add_argument("--size", type=int, default=256, help="image side for the timing (default 256)")
    demo_parser.add_argument("--rounds", type=int, default=3, help="timed runs of the Python loops (default 3)")
    bench_parser = commands.add_parser("bench", help="time fastcorr against scipy, OpenCV and torch side by side")
    bench_parser.add_argument("--quick", action="store_true", help="fewer cases")
    bench_parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds per case (default 9)")
    bench_parser.add_argument("--plot", metavar="FILE.png", help="draw speed-up against image size")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.command == "bench":
        from fastcorr import _bench

        _bench.run(args.quick, args.rounds, args.plot)
        return 0
    if args.size < 3:
        parser.error("--size must be at least 3")
    demo(args.size, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
