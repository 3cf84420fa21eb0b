import io
import sys

import numpy as np
import pytest

import fastcorr as fc

CONFIGS = [
    dict(),
    dict(momentum=0.9),
    dict(momentum=0.5, nesterov=True),
    dict(weight_decay=0.1),
    dict(momentum=0.8, weight_decay=0.01, nesterov=True),
    dict(momentum=0.7, weight_decay=0.2),
]


def textbook_sgd(data, grads, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
    """torch.optim.SGD's documented update (dampening 0), one step per gradient."""
    data, buf = data.astype(np.float64), None
    for grad in grads:
        g = grad + weight_decay * data
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + g
            g = g + momentum * buf if nesterov else buf
        data = data - lr * g
    return data


def run_sgd(data, grads, lr, **options):
    p = fc.Parameter(data)
    opt = fc.SGD([p], lr, **options)
    buffer = p.data
    for grad in grads:
        p.grad[...] = grad
        opt.step()
    assert p.data is buffer
    return p.data


# SGD

@pytest.mark.parametrize("options", CONFIGS, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_is_the_textbook_update(options, dtype, rng):
    data = rng.standard_normal((2, 3)).astype(dtype)
    grads = rng.standard_normal((6, 2, 3)).astype(dtype)
    ours = run_sgd(data, grads, 0.05, **options)
    assert ours.dtype == dtype
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(ours, textbook_sgd(data, grads, 0.05, **options), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("options", CONFIGS, ids=str)
def test_sgd_matches_torch(options, rng):
    torch = pytest.importorskip("torch")
    data = [rng.standard_normal((2, 1, 2, 2)), rng.standard_normal(2)]
    params = [fc.Parameter(d) for d in data]
    tparams = [torch.nn.Parameter(torch.from_numpy(d.copy())) for d in data]
    opt, topt = fc.SGD(params, 0.1, **options), torch.optim.SGD(tparams, 0.1, **options)
    for _ in range(5):
        for p, tp in zip(params, tparams):
            grad = rng.standard_normal(p.shape)
            p.grad = grad
            tp.grad = torch.from_numpy(grad.copy())
        opt.step()
        topt.step()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-13, atol=1e-13)


def test_sgd_steps_every_parameter_of_a_layer():
    layer = fc.Conv2D(2, in_channels=2, out_channels=3, dtype=np.float64, rng=0)
    before = [p.data.copy() for p in layer.parameters()]
    opt = fc.SGD(layer.parameters(), 0.5)
    for p in layer.parameters():
        p.grad[...] = 1.0
    opt.step()
    for p, old in zip(layer.parameters(), before):
        np.testing.assert_allclose(p.data, old - 0.5)


def test_zero_grad_is_in_place():
    params = [fc.Parameter(np.ones((2, 2), np.float32)), fc.Parameter(np.ones(3))]
    grads = [p.grad for p in params]
    for p in params:
        p.grad[...] = 3.0
    fc.SGD(params, 0.1).zero_grad()
    for p, g in zip(params, grads):
        assert p.grad is g
        assert not g.any()


def test_zero_learning_rate_changes_nothing():
    p = fc.Parameter(np.arange(4.0))
    p.grad[...] = 1.0
    fc.SGD([p], 0.0, momentum=0.9, nesterov=True).step()
    np.testing.assert_array_equal(p.data, np.arange(4.0))


def test_sgd_accepts_any_iterable():
    layer = fc.Conv2D(1)
    assert fc.SGD(iter(layer.parameters()), 1).params == layer.parameters()


P = fc.Parameter(np.zeros(2))
BAD_SGD = [
    (([P], -0.1), {}, ValueError, r"invalid lr=-0\.1"),
    (([P], float("nan")), {}, ValueError, "invalid lr=nan"),
    (([P], "0.1"), {}, TypeError, "lr must be a real number"),
    (([P], None), {}, TypeError, "lr must be a real number"),
    (([P], 0.1), {"momentum": -0.5}, ValueError, "invalid momentum=-0.5"),
    (([P], 0.1), {"weight_decay": -1e-4}, ValueError, "invalid weight_decay"),
    (([P], 0.1), {"nesterov": True}, ValueError, r"nesterov=True needs momentum > 0"),
    (([P], 0.1), {"nesterov": "yes", "momentum": 0.9}, TypeError, "nesterov must be True or False"),
    (([], 0.1), {}, ValueError, "params is empty"),
    (([np.zeros(2)], 0.1), {}, TypeError, "params must hold fastcorr.Parameter objects, got ndarray"),
    ((P, 0.1), {}, TypeError, r"not a single Parameter; pass \[param\]"),
    ((None, 0.1), {}, TypeError, "params must be an iterable of Parameters, got NoneType"),
    (([P, P], 0.1), {}, ValueError, "the same Parameter more than once"),
]


@pytest.mark.parametrize("args, kwargs, exception, match", BAD_SGD)
def test_sgd_bad_hyper_parameters(args, kwargs, exception, match):
    with pytest.raises(exception, match=match):
        fc.SGD(*args, **kwargs)


# fit: the chapter's experiment

def chapter_data():
    X = np.ones((6, 8), np.float32)
    X[:, 2:6] = 0
    Y = fc.corr2d(X, np.array([[1.0, -1.0]], np.float32))
    return X.reshape(1, 1, 6, 8), Y.reshape(1, 1, 6, 7)


def chapter_layer(seed):
    layer = fc.Conv2D((1, 2), bias=False, rng=seed)
    layer.weight.data = np.random.default_rng(seed).uniform(-0.07, 0.07, (1, 1, 1, 2))
    return layer


@pytest.mark.parametrize("seed", range(20))
def test_chapter_replay_learns_the_edge_kernel(seed):
    X, Y = chapter_data()
    layer = chapter_layer(seed)
    history = fc.fit(layer, X, Y, loss="sse", lr=3e-2, epochs=10)
    assert len(history) == 10
    assert all(isinstance(h, float) for h in history)
    assert np.all(np.diff(history) < 0)
    np.testing.assert_allclose(layer.weight.data.reshape(2), [1.0, -1.0], atol=0.05)


def test_chapter_replay_matches_torch(capsys):
    torch = pytest.importorskip("torch")
    X, Y = chapter_data()
    layer = chapter_layer(0)
    conv2d = torch.nn.Conv2d(1, 1, kernel_size=(1, 2), bias=False)
    with torch.no_grad():
        conv2d.weight.copy_(torch.from_numpy(layer.weight.data))
    tX, tY, lr = torch.from_numpy(X), torch.from_numpy(Y), 3e-2
    for i in range(10):
        Y_hat = conv2d(tX)
        l = (Y_hat - tY) ** 2
        conv2d.zero_grad()
        l.sum().backward()
        conv2d.weight.data[:] -= lr * conv2d.weight.grad
        if (i + 1) % 2 == 0:
            print(f"epoch {i + 1}, loss {l.sum():.3f}")
    chapter_lines = capsys.readouterr().out
    fc.fit(layer, X, Y, lr=lr, epochs=10, verbose=2)
    assert capsys.readouterr().out == chapter_lines
    np.testing.assert_allclose(layer.weight.data, conv2d.weight.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_verbose_prints_the_chapter_lines(capsys):
    X, Y = chapter_data()
    history = fc.fit(chapter_layer(1), X, Y, lr=3e-2, epochs=4, verbose=True)
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [f"epoch {i + 1}, loss {h:.3f}" for i, h in enumerate(history)]
    assert captured.err == ""
    fc.fit(chapter_layer(1), X, Y, lr=3e-2, epochs=5, verbose=2)
    assert [line.split(",")[0] for line in capsys.readouterr().out.splitlines()] == ["epoch 2", "epoch 4"]
    fc.fit(chapter_layer(1), X, Y, lr=3e-2, epochs=3)
    assert capsys.readouterr().out == ""


def test_two_dimensional_image_is_the_same_as_nchw():
    X, Y = chapter_data()
    a, b = chapter_layer(2), chapter_layer(2)
    assert fc.fit(a, X[0, 0], Y[0, 0], lr=3e-2, epochs=3) == fc.fit(b, X, Y, lr=3e-2, epochs=3)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)


# fit: losses, batches, optimizers

def regression(n=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 2, 5, 5))
    target = fc.Conv2D(3, in_channels=2, out_channels=2, padding=1, dtype=np.float64, rng=seed + 100)
    return X, target(X)


def small_layer(seed=0):
    return fc.Conv2D(3, in_channels=2, out_channels=2, padding=1, dtype=np.float64, rng=seed)


def test_mse_gradient_is_sse_gradient_over_numel():
    X, Y = regression()
    sse_layer, mse_layer = small_layer(), small_layer()
    sse = fc.fit(sse_layer, X, Y, loss="sse", lr=1e-3, epochs=4)
    mse = fc.fit(mse_layer, X, Y, loss="mse", lr=1e-3 * Y.size, epochs=4)
    np.testing.assert_allclose(mse, np.array(sse) / Y.size, rtol=1e-10)
    for p, q in zip(sse_layer.parameters(), mse_layer.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-10)


@pytest.mark.parametrize("loss", ["sse", "mse"])
@pytest.mark.parametrize("batch_size", [None, 1, 3, 10, 50])
def test_epoch_loss_is_measured_over_every_sample(loss, batch_size):
    X, Y = regression()
    layer = small_layer()
    sse = float(np.sum((layer(X) - Y) ** 2))
    history = fc.fit(layer, X, Y, loss=loss, lr=0.0, epochs=2, batch_size=batch_size, shuffle=True, rng=0)
    expected = sse if loss == "sse" else sse / Y.size
    np.testing.assert_allclose(history, [expected, expected], rtol=1e-12)


def test_one_batch_of_everything_is_the_whole_set():
    X, Y = regression()
    a, b = small_layer(), small_layer()
    assert fc.fit(a, X, Y, lr=1e-3, epochs=3) == fc.fit(b, X, Y, lr=1e-3, epochs=3, batch_size=len(X))


class Recording(fc.Conv2D):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches = []

    def forward(self, x):
        self.batches.append(np.asarray(x)[:, 0, 0, 0].astype(int).tolist())
        return super().forward(x)


def test_shuffled_mini_batches_cover_every_sample_once_per_epoch():
    X = np.broadcast_to(np.arange(10.0)[:, None, None, None], (10, 1, 3, 3)).copy()
    Y = np.zeros((10, 1, 2, 2))
    layer = Recording(2, rng=0)
    fc.fit(layer, X, Y, lr=1e-3, epochs=3, batch_size=3, shuffle=True, rng=5)
    assert [len(b) for b in layer.batches] == [3, 3, 3, 1] * 3
    epochs = [sum(layer.batches[i : i + 4], []) for i in range(0, 12, 4)]
    for order in epochs:
        assert sorted(order) == list(range(10))
    assert epochs[0] != epochs[1] and epochs[0] != list(range(10))

    again = Recording(2, rng=0)
    fc.fit(again, X, Y, lr=1e-3, epochs=3, batch_size=3, shuffle=True, rng=np.random.default_rng(5))
    assert again.batches == layer.batches

    in_order = Recording(2, rng=0)
    fc.fit(in_order, X, Y, lr=1e-3, epochs=1, batch_size=4)
    assert in_order.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_fit_is_the_chapter_loop_with_the_given_optimizer():
    X, Y = regression()
    heavy, manual = small_layer(), small_layer()
    history = fc.fit(heavy, X, Y, optimizer=fc.SGD(heavy.parameters(), 1e-4, momentum=0.9, nesterov=True), epochs=5)
    opt = fc.SGD(manual.parameters(), 1e-4, momentum=0.9, nesterov=True)
    expected = []
    for _ in range(5):
        opt.zero_grad()
        diff = manual(X) - Y
        expected.append(float(np.sum(diff**2)))
        manual.backward(2 * diff)
        opt.step()
    np.testing.assert_allclose(history, expected, rtol=1e-12)
    for p, q in zip(heavy.parameters(), manual.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-12)
    assert history != fc.fit(small_layer(), X, Y, lr=1e-4, epochs=5)


def test_bias_is_trained():
    X, _ = regression()
    layer = small_layer()
    Y = layer(X) + np.array([1.0, -2.0])[:, None, None]
    fc.fit(layer, X, Y, loss="mse", lr=0.5, epochs=100)
    bias_before = small_layer().bias.data
    np.testing.assert_allclose(layer.bias.data - bias_before, [1.0, -2.0], atol=1e-3)


# fit: progress bar

class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def tiny():
    return fc.Conv2D(1, bias=False, rng=0), np.ones((2, 2)), np.ones((2, 2))


def test_progress_bar_when_forced(capsys):
    layer, X, Y = tiny()
    fc.fit(layer, X, Y, lr=0.1, epochs=3, progress=True)
    err = capsys.readouterr().err
    assert "3/3 100%" in err and err.endswith("\n")
    fc.fit(layer, X, Y, lr=0.1, epochs=300, progress=False)
    fc.fit(layer, X, Y, lr=0.1, epochs=300)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("epochs, shown", [(200, False), (201, True)])
def test_progress_bar_appears_on_a_terminal_for_long_runs(epochs, shown, monkeypatch):
    stream = FakeTTY()
    monkeypatch.setattr(sys, "stderr", stream)
    layer, X, Y = tiny()
    fc.fit(layer, X, Y, lr=0.01, epochs=epochs)
    assert (f"{epochs}/{epochs} 100%" in stream.getvalue()) == shown
    assert bool(stream.getvalue()) == shown


def test_progress_bar_and_verbose_lines_do_not_mix(capsys):
    layer, X, Y = tiny()
    fc.fit(layer, X, Y, lr=0.01, epochs=4, verbose=2, progress=True)
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].startswith("epoch 2, loss ")
    assert "4/4 100%" in captured.err


# fit: bad input

X6, Y6 = chapter_data()


def fit_with(**kwargs):
    args = {"layer": chapter_layer(0), "X": X6, "Y": Y6, "lr": 0.03, **kwargs}
    return lambda: fc.fit(args.pop("layer"), args.pop("X"), args.pop("Y"), **args)


BAD_FIT = [
    (fit_with(loss="mae"), ValueError, "loss must be one of 'sse', 'mse'; got loss='mae'"),
    (fit_with(loss=None), ValueError, "loss must be one of"),
    (fit_with(Y=np.ones((1, 1, 6, 8))), ValueError, r"Y must have the shape of layer\(X\), \(1, 1, 6, 7\), got \(1, 1, 6, 8\)"),
    (fit_with(Y=np.ones((6, 7))), ValueError, r"Y must have the shape of layer\(X\), \(1, 1, 6, 7\)"),
    (fit_with(X=np.ones((1, 2, 6, 8))), ValueError, r"X has 2 channels .* in_channels=1"),
    (fit_with(X=np.ones((6, 8, 1))), ValueError, r"X must be 2-D \(H, W\) or 4-D"),
    (fit_with(X=np.ones((0, 1, 6, 8)), Y=np.ones((0, 1, 6, 7))), ValueError, "X holds no samples"),
    (fit_with(X=None), TypeError, "X must be an array-like"),
    (fit_with(Y=np.ones((1, 1, 6, 7), complex)), TypeError, "Y must be real"),
    (fit_with(epochs=0), ValueError, "epochs must be at least 1, got 0"),
    (fit_with(epochs=2.0), TypeError, "epochs must be an int"),
    (fit_with(batch_size=0), ValueError, "batch_size must be at least 1, got 0"),
    (fit_with(lr=None), ValueError, "pass exactly one of lr= .* or optimizer="),
    (fit_with(optimizer=fc.SGD(chapter_layer(0).parameters(), 0.1)), ValueError, "pass exactly one of lr="),
    (fit_with(lr=None, optimizer=object()), TypeError, "optimizer must have zero_grad"),
    (fit_with(lr=-1.0), ValueError, "invalid lr"),
    (fit_with(verbose=-1), ValueError, "verbose must be True, False or a positive int"),
    (fit_with(verbose="yes"), ValueError, "verbose must be True, False or a positive int"),
    (fit_with(layer=object()), TypeError, "layer must be a fastcorr.Conv2D"),
]


@pytest.mark.parametrize("func, exception, match", BAD_FIT)
def test_fit_bad_input(func, exception, match):
    with pytest.raises(exception, match=match):
        func()
