import subprocess
from pathlib import Path
import sys

import numpy as np
import pytest

from fastcorr._chapter import chapter_corr2d
from fastcorr.__main__ import main, train


def test_chapter_loops_are_the_textbook_function():
    X = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(chapter_corr2d(X, np.array([[0.0, 1.0], [2.0, 3.0]])), [[19.0, 25.0], [37.0, 43.0]])


def test_demo_prints_the_chapter(capsys):
    assert main(["demo", "--size", "32", "--rounds", "1"]) == 0
    text = capsys.readouterr().out
    assert "[[19. 25.]\n [37. 43.]]" in text
    assert "[ 0.  1.  0.  0.  0. -1.  0.]" in text
    assert "[-1. -1. -1. -1. -1. -1.]" in text
    assert "faster, with the same result" in text
    assert "epoch 1, loss" in text and "epoch 10, loss" in text
    assert "learned kernel" in text


@pytest.mark.parametrize("seed", range(20))
def test_training_replay_learns_the_edge_kernel(seed, capsys):
    learned = train(seed=seed)
    np.testing.assert_allclose(learned, [[1.0, -1.0]], atol=0.05)
    losses = [float(line.split("loss ")[1]) for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(losses) == 10 and losses == sorted(losses, reverse=True)


@pytest.mark.parametrize("edges, kernel, expected", [
    ("horizontal", None, [[1.0], [-1.0]]),
    ("vertical", (2, 2), None),
    ("diagonal", None, [[0.0, 1.0], [-1.0, 0.0]]),
])
def test_training_replay_exercises(edges, kernel, expected, capsys):
    learned = train(edges, kernel, epochs=200)
    losses = [float(line.split("loss ")[1]) for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert losses[-1] < 1e-3 * losses[0]
    if expected is not None:
        np.testing.assert_allclose(learned, expected, atol=0.05)
    else:
        # Every row of the image is the same, so only the column sums of a 2x2 kernel are determined.
        np.testing.assert_allclose(learned.sum(axis=0), [1.0, -1.0], atol=0.05)


def test_training_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "edges.png"
    train(plot=str(path))
    assert path.stat().st_size > 1000
    assert f"wrote {path}" in capsys.readouterr().out


def test_training_plot_without_matplotlib(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit, match="--plot needs matplotlib: pip install matplotlib"):
        train(plot=str(tmp_path / "edges.png"))


def test_bad_arguments_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--size", "1"])
    assert "--size must be at least 3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([])
    with pytest.raises(SystemExit):
        main(["demo", "--edges", "diagonal", "--kernel", "1x2"])
    assert "--kernel 1x2 is smaller than the diagonal edge kernel 2x2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--kernel", "2by2"])
    assert "expected HxW" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "fastcorr", "demo", "--size", "16", "--rounds", "1"],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert "corr2d(X, K)" in result.stdout


def test_bench_prints_a_table_of_medians_and_ratios(monkeypatch, capsys, tmp_path):
    from fastcorr import _bench

    monkeypatch.setattr(_bench, "QUICK", [((6, 8), (1, 2)), ((40, 40), (3, 3))])
    monkeypatch.setattr(_bench, "BATCHED", [(2, 2, 8, 8, 3, 3, 1)])
    monkeypatch.setattr(_bench, "LARGE", [((40, 40), (9, 9))])
    png = tmp_path / "bench.png"
    matplotlib = None
    try:
        import matplotlib
    except ImportError:
        pass
    assert main(["bench", "--quick", "--rounds", "2"] + (["--plot", str(png)] if matplotlib else [])) == 0
    text = capsys.readouterr().out
    assert "GEMM reference" in text
    assert "| 6x8 1x2 float32 |" in text and "| 40x40 3x3 float64 |" in text
    assert "scipy ms (fastcorr/scipy)" in text
    assert "| 40x40 9x9 valid float32 |" in text and "scipy oaconvolve ms" in text
    if matplotlib:
        assert png.stat().st_size > 1000


def test_measure_interleaves_turns_and_takes_medians(monkeypatch):
    from fastcorr import _bench

    monkeypatch.setattr(_bench, "TURN", 0.0)
    calls = []
    case = _bench.Case("c", 1.0, {"fastcorr": lambda: calls.append("a"), "peer": lambda: calls.append("b")})
    _bench.measure(case, rounds=3)
    # One untimed-for-the-table first call each, then three rounds of two-call turns.
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3
    assert set(case.medians) == {"fastcorr", "peer"}


def test_a_turn_keeps_its_fastest_call(monkeypatch):
    from fastcorr import _bench

    monkeypatch.setattr(_bench, "TURN", 0.0)
    durations = iter([0.03, 0.01])
    monkeypatch.setattr(_bench, "_time", lambda func: next(durations))
    assert _bench._turn(lambda: None) == 0.01


def test_slow_implementations_get_fewer_rounds(monkeypatch):
    from fastcorr import _bench

    monkeypatch.setattr(_bench, "TURN", 0.0)
    monkeypatch.setattr(_bench, "_time", lambda func: func())
    calls = []
    case = _bench.Case("c", 1.0, {"fast": lambda: calls.append("fast") or 0.001,
                                  "slow": lambda: calls.append("slow") or 1.0})
    _bench.measure(case, rounds=5, budget=4.0)
    # Two-call turns of 1 s each fit twice into a 4 s budget.
    assert calls.count("fast") == 1 + 5 * 2 and calls.count("slow") == 1 + 2 * 2
    assert case.medians == {"fast": 0.001, "slow": 1.0}


def test_readme_api_block_runs():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("## The API in a few lines", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["Y"].dtype == np.float32 and namespace["y"].shape == (8, 16, 32, 32)
    assert len(namespace["history"]) == 10


def test_readme_quick_start_is_two_commands_and_ci_runs_the_second():
    root = Path(__file__).parent.parent
    block = (root / "README.md").read_text().split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip()]
    assert commands == ['pip install . && python -m fastcorr demo', 'pip install ".[test]" && python -m pytest -n auto']
    assert commands[1] in (root / ".ci" / "run").read_text()


def _case(kind, label, dtype, **peers):
    from fastcorr import _bench

    return _bench.Case(label, 1.0, {}, row=(kind, label, dtype), medians={"fastcorr": 1.0, **peers})


def test_bench_plot_draws_each_peer_s_ratios_from_the_1x_line_with_nothing_overlapping(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from fastcorr import _bench

    cases = [_case("image", "64², 3×3", "float32", scipy=20.0, cv2=0.5),
             _case("image", "64², 3×3", "float64", scipy=10.0, cv2=2.0),
             _case("image", "2048², 3×3", "float32", scipy=100.0, cv2=3.0),
             _case("layer", "N8 C64 56² O64 3×3, forward", "float32", torch=0.8),
             _case("layer", "training step, 6×8, 1×2", "float32", torch=10.0)]
    path = tmp_path / "bench.png"
    fig = _bench.plot(cases, str(path), "2026-11-26, Some CPU (AVX2), 2 cores; numpy 2.4.6, scipy 1.17.1")
    assert path.read_bytes()[16:20] == (880).to_bytes(4, "big")
    scipy_ax, cv2_ax, torch_ax = fig.axes
    assert scipy_ax.get_title() == "vs scipy.signal.correlate2d" and cv2_ax.get_title() == "vs OpenCV filter2D"
    assert "vs torch" in torch_ax.get_title()
    assert [t.get_text() for t in scipy_ax.get_yticklabels()] == ["64², 3×3", "2048², 3×3"]
    for ax, ratios in [(scipy_ax, [20, 10, 100]), (cv2_ax, [0.5, 2, 3]), (torch_ax, [0.8, 10])]:
        assert [p.get_x() for p in ax.patches] == [1] * len(ratios)
        np.testing.assert_allclose([p.get_x() + p.get_width() for p in ax.patches], ratios)
        assert ax.get_xscale() == "log" and any(list(line.get_xdata()) == [1, 1] for line in ax.lines)
    assert [t.get_text() for t in cv2_ax.texts] == ["0.5×", "2.0×", "3.0×"]
    assert "2026-11-26, Some CPU (AVX2), 2 cores\nnumpy 2.4.6, scipy 1.17.1" in [t.get_text() for t in fig.texts]

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    for ax in fig.axes:
        ticks = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
        assert not any(a.overlaps(b) for i, a in enumerate(ticks) for b in ticks[i + 1:])
    legend = fig.legends[0].get_window_extent(renderer)
    footer = fig.texts[-1].get_window_extent(renderer)
    for ax in fig.axes:
        assert not legend.overlaps(ax.get_tightbbox(renderer)) and not footer.overlaps(ax.get_tightbbox(renderer))


def test_bench_plot_needs_a_peer():
    pytest.importorskip("matplotlib")
    from fastcorr import _bench

    with pytest.raises(ValueError, match="no case has fastcorr and a peer"):
        _bench.plot([_case("image", "64², 3×3", "float32")], "unused.png")


@pytest.mark.parametrize("cpuinfo, expected", [
    ("vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 207\nmodel name\t: Intel(R) Xeon(R) Processor\n"
     "flags\t\t: fpu avx2 avx512f\n\nprocessor\t: 1\n",
     "Intel(R) Xeon(R) Processor (Emerald Rapids, family 6 model 207, AVX-512)"),
    ("vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC 9R14 96-Core Processor\n"
     "flags\t\t: fpu avx2 avx512f\n", "AMD EPYC 9R14 96-Core Processor (Zen 4, family 25 model 17, AVX-512)"),
    ("vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC 7B13\nflags\t\t: avx2\n",
     "AMD EPYC 7B13 (Zen 3, family 25 model 1, AVX2)"),
])
def test_bench_names_the_cpu_model(tmp_path, cpuinfo, expected):
    from fastcorr import _bench

    (tmp_path / "cpuinfo").write_text(cpuinfo)
    assert _bench.cpu(str(tmp_path / "cpuinfo")) == expected


def test_bench_runs_every_library_on_numba_s_thread_count_from_the_first_case(monkeypatch, capsys):
    cv2 = pytest.importorskip("cv2")
    import numba

    from fastcorr import _bench

    torch = _bench._optional("torch")
    before = cv2.getNumThreads(), torch.get_num_threads() if torch else None
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 1)
    monkeypatch.setattr(_bench, "QUICK", [((6, 8), (1, 2))])
    monkeypatch.setattr(_bench, "LARGE", [])
    monkeypatch.setattr(_bench, "BATCHED", [])
    monkeypatch.setattr(_bench, "gemm_rate", lambda dtype: 1.0)
    threads = []

    def measure(case, rounds):
        threads.append((cv2.getNumThreads(), torch.get_num_threads() if torch else 1))
        case.medians = {name: 1.0 for name in case.impls}
        return case

    monkeypatch.setattr(_bench, "measure", measure)
    try:
        _bench.run(quick=True, rounds=1)
    finally:
        cv2.setNumThreads(before[0])
        if torch:
            torch.set_num_threads(before[1])
    assert threads and set(threads) == {(1, 1)}
    assert ", 1 thread, " in capsys.readouterr().out
