"""CPC models: frame arithmetic, causality, SincNet filters, every registered combination trains."""

import numpy as np
import pytest
import torch

from jtm.choices import PREDICTORS
from jtm.models.encoder import DOWNSAMPLING, Encoder, SincConv
from jtm.models.registry import all_combinations, build_cpc, build_encoder
from jtm.models.spec import ModelSpec
from jtm.train import infonce
from jtm.train.infonce import draw_negatives, draw_subpool, info_nce

pytestmark = pytest.mark.check  # the contributor tier: make check

SMALL = dict(
    hidden=16,
    norm="layer",
    sinc_kernel=31,
    mel_bands=32,
    mel_window=400,
    context_layers=1,
    attention_heads=2,
    predictor="linear",
    n_predicts=3,
    reverse=False,
)


def tone_batch(batch: int = 4, length: int = 3200, seed: int = 0) -> torch.Tensor:
    """Predictable audio: sums of tones whose pitch steps every 40 ms."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 16000
    audio = []
    for _ in range(batch):
        freqs = rng.choice([220.0, 330.0, 440.0, 550.0], size=length // 640 + 1)
        audio.append(np.sin(2 * np.pi * np.repeat(freqs, 640)[:length] * t))
    return torch.tensor(np.array(audio), dtype=torch.float32)


@pytest.mark.parametrize("kind", ["conv", "sinc", "logmel", "cqt"])
def test_encoder_downsamples_by_160_and_a_window_gives_128_frames(kind):
    sizes = {"hidden": 8, "sinc_kernel": 251, "mel_window": 1024}
    spec = ModelSpec(encoder=kind, context="gru", **{**SMALL, **sizes})
    encoder = build_encoder(spec)
    assert DOWNSAMPLING == 160
    assert encoder(torch.zeros(2, 20_480)).shape == (2, 128, 8)
    assert encoder(torch.zeros(1, 160 * 7)).shape == (1, 7, 8)


def test_encoder_batched_equals_one_by_one():
    encoder = Encoder(8, norm="layer").eval()
    audio = torch.randn(3, 1600)
    together = encoder(audio)
    alone = torch.cat([encoder(audio[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_sinc_filters_pass_their_band():
    sinc = SincConv(8, 251, stride=1, padding=125)
    kernels = sinc.kernels().detach().squeeze(1).numpy()
    response = np.abs(np.fft.rfft(kernels, n=4096))
    freqs = np.fft.rfftfreq(4096, 1 / 16000)
    low = (sinc.min_low_hz + sinc.low_hz.abs()).detach().squeeze(1).numpy()
    high = low + sinc.min_band_hz + sinc.band_hz.abs().detach().squeeze(1).numpy()
    peaks = freqs[response.argmax(1)]
    assert np.all((peaks >= low * 0.8) & (peaks <= high * 1.2))
    assert np.all(np.diff(low) > 0)  # mel-spaced, increasing


@pytest.mark.parametrize("spec", all_combinations(**SMALL), ids=lambda s: f"{s.encoder}-{s.context}")
def test_every_combination_is_causal_and_trains(spec):
    torch.manual_seed(0)
    model = build_cpc(spec)
    audio = tone_batch()
    frames, context, predictions, _ = model(audio)
    assert frames.shape == (4, 20, 16) and context.shape == (4, 20, 16)
    assert predictions.shape == (4, 20, 3, 16)
    # causality: changing the audio after frame 10 leaves the context up to frame 9 unchanged
    changed = audio.clone()
    changed[:, 11 * 160 :] = torch.randn_like(changed[:, 11 * 160 :])
    model.eval()
    with torch.no_grad():
        before, after = model(audio)[1], model(changed)[1]
    torch.testing.assert_close(before[:, :9], after[:, :9], rtol=1e-4, atol=1e-5)
    model.train()
    # a few steps on one batch: the loss falls
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    draws = draw_negatives(generator, 4, 20, 8, 80)
    losses = []
    # the CQT's long low kernels (7.6 frames at 220 Hz) smear these 40 ms tone steps: more steps
    for _ in range(60 if spec.encoder == "cqt" else 25):
        frames, _, predictions, _ = model(audio)
        loss, _, _ = info_nce(frames, predictions, frames.reshape(-1, 16), draws)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


@pytest.mark.parametrize("head", PREDICTORS)
def test_heads_and_reverse_mode(head):
    spec = ModelSpec(encoder="conv", context="gru", **{**SMALL, "predictor": head, "reverse": True})
    model = build_cpc(spec)
    frames, context, predictions, _ = model(tone_batch(2))
    assert predictions.shape == (2, 20, 3, 16)
    # reversed: the context at the last frame has seen only the last frame
    audio = tone_batch(2)
    changed = audio.clone()
    changed[:, : 5 * 160] = 0
    with torch.no_grad():
        a, b = model.eval()(audio)[1], model(changed)[1]
    torch.testing.assert_close(
        a[:, :10], b[:, :10], rtol=1e-4, atol=1e-5
    )  # reversed order: first = last frame


@pytest.mark.parametrize("scorer", ["lean", "gemm"])
@pytest.mark.parametrize("subpool", [None, 9], ids=["whole-pool", "sub-pool"])
def test_lean_loss_equals_the_materialised_one(subpool, scorer):
    """In float32 the lean and GEMM scorers give the reference's loss and gradients."""
    torch.manual_seed(0)
    frames = torch.randn(3, 12, 8, requires_grad=True)
    predictions = torch.randn(3, 12, 4, 8, requires_grad=True)
    if subpool is None:
        draws = draw_negatives(torch.Generator().manual_seed(1), 3, 12, 10, 36)
    else:
        generators = torch.Generator().manual_seed(2), torch.Generator().manual_seed(1)
        subpool, draws = draw_subpool(*generators, 3, 12, 10, 36, subpool)
    pool = frames.reshape(-1, 8)
    lean = info_nce(frames, predictions, pool, draws, subpool=subpool, scorer=scorer)
    full = info_nce(frames, predictions, pool, draws, scorer="materialise", subpool=subpool)
    for a, b in zip(lean, full, strict=True):
        torch.testing.assert_close(a, b)
    grads = [torch.autograd.grad(x[0], (frames, predictions)) for x in (lean, full)]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


GATHERING = [10**6, 0]  # infonce.GATHER_ABOVE: score against the whole pool, or gather N rows


@pytest.mark.parametrize("gather_above", GATHERING, ids=["product", "gather"])
@pytest.mark.parametrize("chunk", [1 << 24, 50], ids=["one-chunk", "row-chunks"])
def test_lean_loss_equals_the_materialised_one_in_row_chunks(monkeypatch, chunk, gather_above):
    """Chunked scores (a row or two at a time) give the same loss and gradients, every way."""
    monkeypatch.setattr(infonce, "CHUNK", chunk)
    monkeypatch.setattr(infonce, "GATHER_ABOVE", gather_above)
    for scorer in ("lean", "gemm"):
        test_lean_loss_equals_the_materialised_one(None, scorer)
        test_lean_loss_equals_the_materialised_one(9, scorer)


@pytest.mark.parametrize("chunk", [1 << 24, 300], ids=["one-chunk", "row-chunks"])
@pytest.mark.parametrize("offset", [0, 3], ids=["first-rank", "row-offset"])
def test_the_bf16_gemm_loss_is_the_float32_loss_within_bf16_rounding(monkeypatch, chunk, offset):
    """The GPU's scorer: bf16 operands (8 significant bits, float32 accumulation) at a
    realistic scale (unit-norm-ish frames, H = 64, 1 + 32 candidates): the loss within 0.1 %,
    per-k accuracy within 2 points, each gradient within 1 % of its largest entry of the
    float32 reference's (measured here: 1e-6, 0, 0.07 %)."""
    monkeypatch.setattr(infonce, "CHUNK", chunk)
    torch.manual_seed(0)
    b, t, k, h, n = 4, 40, 6, 64, 32
    frames = (torch.randn(b, t, h) / h**0.5).requires_grad_()
    predictions = (torch.randn(b, t, k, h) / h**0.5 + frames.detach().unsqueeze(2)).requires_grad_()
    pool = torch.cat([torch.randn(offset * t, h) / h**0.5, frames.reshape(-1, h), torch.randn(t, h) / h**0.5])
    draws = draw_negatives(torch.Generator().manual_seed(1), b, t, n, len(pool))
    low = info_nce(frames, predictions, pool, draws, offset, scorer="gemm", dtype=torch.bfloat16)
    full = info_nce(frames, predictions, pool, draws, offset, scorer="materialise")
    torch.testing.assert_close(low[0], full[0], rtol=1e-3, atol=0)
    torch.testing.assert_close(low[2], full[2], rtol=0, atol=0.02)
    assert not torch.equal(low[1], full[1])  # bf16 did round: the comparison is not vacuous
    for a, b_ in zip(torch.autograd.grad(low[0], (frames, predictions)),
                     torch.autograd.grad(full[0], (frames, predictions)), strict=True):  # fmt: skip
        assert 1e-4 * b_.abs().max() < (a - b_).abs().max() <= 0.01 * b_.abs().max()  # bf16's, not float32's


def test_scorers_by_device_and_a_wrong_name():
    assert infonce.scorer_for(torch.device("cuda")) == "gemm"
    assert infonce.scorer_for(torch.device("cpu")) == "lean"
    frames, predictions = torch.randn(1, 4, 2), torch.randn(1, 4, 1, 2)
    with pytest.raises(ValueError, match="scorer must be one of"):
        info_nce(frames, predictions, frames[0], torch.zeros(1, 4, 2, dtype=torch.long), scorer="fused")


def _saved_sizes(compute):
    """(sizes of the tensors autograd saves for backward while `compute()` runs, its result)."""
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda x: saved.append(x.numel()) or x, lambda x: x):
        result = compute()
    return saved, result


SCORING = [("lean", 10**6), ("lean", 0), ("gemm", 0)]  # (scorer, GATHER_ABOVE)


@pytest.mark.parametrize("scorer,gather_above", SCORING, ids=["product", "gather", "gemm"])
def test_the_lean_loss_keeps_no_rows_by_pool_product_for_backward(monkeypatch, scorer, gather_above):
    """What autograd saves for backward grows with positions x N, not with the pool: at a
    DDP-sized pool the (positions x P) products would dwarf everything else."""
    monkeypatch.setattr(infonce, "GATHER_ABOVE", gather_above)
    torch.manual_seed(0)
    b, t, k, h, n, others = 2, 10, 3, 4, 5, 400
    frames = torch.randn(b, t, h, requires_grad=True)
    predictions = torch.randn(b, t, k, h, requires_grad=True)
    pool = torch.cat([frames.reshape(-1, h), torch.randn(others, h)])  # + other ranks' frames
    draws = draw_negatives(torch.Generator().manual_seed(1), b, t, n, len(pool))
    saved, (loss, _, _) = _saved_sizes(lambda: info_nce(frames, predictions, pool, draws, scorer=scorer))
    assert saved and max(saved) < b * (t - k) * len(pool), sorted(saved)[-3:]  # the smallest product
    loss.backward()
    assert predictions.grad.abs().sum() > 0 and frames.grad.abs().sum() > 0


def test_positive_is_never_a_negative():
    """Draws covering every other pool row give exactly the softmax over the whole pool."""
    torch.manual_seed(0)
    b, t, h = 2, 6, 5
    frames, predictions = torch.randn(b, t, h), torch.randn(b, t, 1, h)
    pool = frames.reshape(-1, h)
    draws = torch.arange(b * t - 1).expand(b, t, b * t - 1)  # 0..P-2: shifted past the positive
    loss, _, _ = info_nce(frames, predictions, pool, draws)
    scores = predictions[:, :-1, 0].reshape(-1, h) @ pool.T
    targets = (torch.arange(b).unsqueeze(1) * t + torch.arange(1, t)).reshape(-1)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(scores, targets))


@pytest.mark.parametrize("sub", [False, True], ids=["whole-pool", "sub-pool"])
def test_negative_draws_come_from_their_generators_and_reach_every_row(sub):
    """The same generators give the same draws whatever torch's global RNG did; draws are
    uniform over [0, P - 1) (whole pool, shifted past the positive later) or over the sub-pool's
    S rows, and a sub-pool is S distinct pool rows."""

    def draw(seed: int, global_seed: int = 100):
        torch.manual_seed(global_seed)  # the global RNG must play no part
        first, second = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
        if sub:
            return draw_subpool(first, second, 4, 30, 16, pool=50, size=20)
        return None, draw_negatives(first, 4, 30, 16, pool=21)

    (subpool, draws), (again_subpool, again) = draw(0), draw(0, global_seed=101)
    assert torch.equal(draws, again) and not torch.equal(draws, draw(1)[1])
    assert draws.shape == (4, 30, 16)
    counts = torch.bincount(draws.flatten(), minlength=20)
    assert len(counts) == 20 and counts.min() > 60  # 1 920 draws: about 96 per row
    if sub:
        assert torch.equal(subpool, again_subpool) and not torch.equal(subpool, draw(1)[0])
        assert len(subpool) == len(set(subpool.tolist())) == 20 and 0 <= subpool.min() and subpool.max() < 50


@pytest.mark.parametrize("scorer", infonce.SCORERS)
def test_each_step_k_scores_its_own_predictions_against_the_frame_k_ahead(scorer):
    """K = 3 predictions per frame, draws covering the whole pool: the loss is the mean over k
    of the softmax over the pool of W_k c_t, computed here frame by frame."""
    torch.manual_seed(0)
    b, t, k_max, h = 2, 7, 3, 4
    frames, predictions = torch.randn(b, t, h), torch.randn(b, t, k_max, h)
    for k in range(1, k_max + 1):  # predictions that find their frame about half the time
        predictions[:, : t - k, k - 1] += frames[:, k:]
    pool = frames.reshape(-1, h)
    draws = torch.arange(b * t - 1).expand(b, t, b * t - 1)
    loss, per_k, accuracy = info_nce(frames, predictions, pool, draws, scorer=scorer)
    for k in range(1, k_max + 1):
        scores = [(pool @ predictions[i, j, k - 1], i * t + j + k) for i in range(b) for j in range(t - k)]
        terms = [torch.logsumexp(row, 0) - row[target] for row, target in scores]
        torch.testing.assert_close(per_k[k - 1], torch.stack(terms).mean())
        hits = [float(row.argmax() == target) for row, target in scores]  # the positive scores highest
        assert accuracy[k - 1] == pytest.approx(np.mean(hits))
    assert 0 < accuracy.min() and accuracy.max() < 1  # neither all nor none: the check can fail
    torch.testing.assert_close(loss, per_k.mean())


def test_the_reference_scorer_materialises_the_candidates():
    """`materialise` is the straightforward formulation, so that the lean loss is compared with
    an independent computation: it keeps a (positions x N x H) candidates tensor for backward."""
    b, t, h, n = 2, 10, 4, 5
    frames = torch.randn(b, t, h, requires_grad=True)
    predictions = torch.randn(b, t, 1, h, requires_grad=True)
    draws = draw_negatives(torch.Generator().manual_seed(1), b, t, n, b * t)
    saved, _ = _saved_sizes(
        lambda: info_nce(frames, predictions, frames.reshape(-1, h), draws, scorer="materialise")
    )
    assert max(saved) >= b * (t - 1) * n * h


@pytest.mark.parametrize("gathered", [False, True], ids=["product", "gather"])
def test_row_chunks_cover_every_row_within_the_budget(monkeypatch, gathered):
    """Each chunk's intermediate, rows x P (product) or rows x N x H (gather), holds at most
    `CHUNK` floats, unless one row alone is larger; the chunks cover the rows in order."""
    monkeypatch.setattr(infonce, "CHUNK", 64)
    for pool_rows, n, h in [(10, 4, 8), (100, 4, 2), (50, 3, 40), (63, 2, 1)]:
        predicted, pool = torch.zeros(37, h), torch.zeros(pool_rows, h)
        index = torch.zeros(37, n, dtype=torch.long)
        slices = infonce._chunks(predicted, pool, index, gathered)
        assert [i for s in slices for i in range(37)[s]] == list(range(37))
        per_row = n * h if gathered else pool_rows
        assert all(len(range(37)[s]) * per_row <= max(64, per_row) for s in slices)
        assert len(slices) == -(-37 // max(1, 64 // per_row))  # no smaller chunks than needed


def test_gathered_chunks_keep_their_candidates_within_the_budget(monkeypatch):
    """The gather path's (rows x N x H) candidates, forward and backward, per chunk."""
    monkeypatch.setattr(infonce, "CHUNK", 200)
    monkeypatch.setattr(infonce, "GATHER_ABOVE", 0)
    sizes, bmm = [], torch.bmm
    monkeypatch.setattr(torch, "bmm", lambda a, b_: sizes.append(max(a.numel(), b_.numel())) or bmm(a, b_))
    frames = torch.randn(2, 12, 8, requires_grad=True)
    predictions = torch.randn(2, 12, 2, 8, requires_grad=True)
    draws = draw_negatives(torch.Generator().manual_seed(1), 2, 12, 5, 24)
    info_nce(frames, predictions, frames.reshape(-1, 8), draws)[0].backward()
    assert sizes and max(sizes) <= 200


def test_the_lean_scorer_gathers_only_from_pools_over_gather_above_times_n_rows(monkeypatch):
    """At most 16 x N pool rows: one product against the pool; more: a gather of N rows each."""
    ways, apply = [], infonce.PoolScores.apply
    monkeypatch.setattr(infonce.PoolScores, "apply", lambda *a: ways.append(a[3]) or apply(*a))
    frames, predictions, n = torch.randn(1, 4, 3), torch.randn(1, 4, 1, 3), 2
    for rows in (infonce.GATHER_ABOVE * n, infonce.GATHER_ABOVE * n + 1):
        pool = torch.cat([frames[0], torch.randn(rows - 4, 3)])
        info_nce(frames, predictions, pool, draw_negatives(torch.Generator().manual_seed(0), 1, 4, n, rows))
    assert ways == [False, True]


def test_a_sub_pool_draw_of_the_positive_is_masked():
    """A sub-pool holding every row, draws covering all of it: the positive's own row is drawn
    once per position and must be masked, leaving the softmax over the whole pool."""
    torch.manual_seed(0)
    b, t, h = 2, 6, 5
    frames, predictions = torch.randn(b, t, h), torch.randn(b, t, 1, h)
    pool = frames.reshape(-1, h)
    generators = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    subpool, _ = draw_subpool(*generators, b, t, 1, b * t, b * t)  # every row, shuffled
    draws = torch.arange(b * t).expand(b, t, b * t)
    loss, _, _ = info_nce(frames, predictions, pool, draws, subpool=subpool)
    scores = predictions[:, :-1, 0].reshape(-1, h) @ pool.T
    targets = (torch.arange(b).unsqueeze(1) * t + torch.arange(1, t)).reshape(-1)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(scores, targets))


@pytest.mark.parametrize("scorer", ["lean", "gemm"])
@pytest.mark.parametrize("offset", [0, 2], ids=["first-rank", "row-offset"])
@pytest.mark.parametrize("sub", [False, True], ids=["whole-pool", "sub-pool"])
def test_a_ddp_pool_at_any_row_offset_gives_the_softmax_over_the_pool(offset, sub, scorer):
    """Under DDP the pool is every rank's frames and this rank's batch starts at `row_offset`:
    with draws covering the whole pool (or sub-pool), the loss is the softmax over every row
    with the positive where the offset puts it, computed here independently."""
    torch.manual_seed(0)
    b, t, h = 2, 6, 5
    frames, predictions = torch.randn(b, t, h), torch.randn(b, t, 1, h)
    pool = torch.cat([torch.randn(offset * t, h), frames.reshape(-1, h), torch.randn(t, h)])  # other ranks'
    if sub:
        generators = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
        subpool, _ = draw_subpool(*generators, b, t, 1, len(pool), len(pool))  # every row, shuffled
        draws = torch.arange(len(pool)).expand(b, t, len(pool))
    else:
        subpool, draws = None, torch.arange(len(pool) - 1).expand(b, t, len(pool) - 1)
    lean = info_nce(frames, predictions, pool, draws, row_offset=offset, subpool=subpool, scorer=scorer)
    full = info_nce(
        frames, predictions, pool, draws, row_offset=offset, scorer="materialise", subpool=subpool
    )
    scores = predictions[:, :-1, 0].reshape(-1, h) @ pool.T
    targets = ((torch.arange(b) + offset).unsqueeze(1) * t + torch.arange(1, t)).reshape(-1)
    expected = torch.nn.functional.cross_entropy(scores, targets)
    torch.testing.assert_close(lean[0], expected)
    torch.testing.assert_close(full[0], expected)


def test_read_outs_context_encoder_and_both():
    from jtm.models.cpc import AudioEmbedder

    torch.manual_seed(0)
    model = build_cpc(ModelSpec(encoder="logmel", context="gru", **SMALL)).eval()
    audio = tone_batch(2)
    with torch.no_grad():
        frames, context, _, _ = model(audio)
        both = AudioEmbedder(model, "both")(audio)
        assert torch.equal(AudioEmbedder(model, "context")(audio), context)
        assert torch.equal(AudioEmbedder(model, "encoder")(audio), frames)
    assert torch.equal(both, torch.cat([context, frames], -1))
