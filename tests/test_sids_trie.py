"""SIDTrie / TokenTrie against a brute-force dict-of-sets trie on random catalogues."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import sidrec.sids.trie as trie_module
from sidrec.sids.trie import SIDTrie, TokenTrie

# (name, codebook sizes, n_items, codes actually used per level (None = all), seed)
CATALOGUES = {
    "full_3x3": ([3, 3], 9, None, 0),
    "single_item": ([3, 5], 1, None, 1),
    "one_level": ([50], 30, None, 2),
    "dense_16_cubed": ([16, 16, 16], 500, None, 3),
    "wide_300_cubed": ([300, 300, 300], 5000, None, 4),
    "four_levels_mixed": ([3, 7, 5, 11], 1000, None, 5),
    "sparse_usage_256": ([256, 256, 256], 2000, [12, 20, 30], 6),
    "four_levels_sparse": ([300, 4, 300, 3], 3000, [40, 4, 25, 3], 7),
}


@dataclass
class Brute:
    """Brute-force trie: prefix tuple -> set of next codes, prefix tuple -> set of item indices."""

    tuples: list[tuple[int, ...]]
    sizes: list[int]
    children: dict[tuple[int, ...], set[int]] = field(default_factory=dict)
    items: dict[tuple[int, ...], set[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for i, tup in enumerate(self.tuples):
            for t in range(len(tup) + 1):
                p = tup[:t]
                self.items.setdefault(p, set()).add(i)
                if t < len(tup):
                    self.children.setdefault(p, set()).add(tup[t])

    def prefixes(self, t: int) -> list[tuple[int, ...]]:
        return sorted(p for p in self.items if len(p) == t)


def make_codes(sizes: list[int], n: int, used: list[int] | None, seed: int) -> np.ndarray:
    """n unique random tuples; level l draws from `used[l]` random codes of its codebook."""
    rng = np.random.default_rng(seed)
    pools = [np.sort(rng.choice(k, size=(u if used else k), replace=False)) for k, u in zip(sizes, used or sizes)]
    space = math.prod(len(p) for p in pools)
    assert n <= space
    if space <= 200_000:
        flat = rng.choice(space, size=n, replace=False)
        idx = np.unravel_index(flat, [len(p) for p in pools])
    else:
        seen: set[tuple[int, ...]] = set()
        rows = []
        while len(rows) < n:
            cand = tuple(int(rng.integers(len(p))) for p in pools)
            if cand not in seen:
                seen.add(cand)
                rows.append(cand)
        idx = tuple(np.array(c) for c in zip(*rows))
    return np.stack([pools[lvl][idx[lvl]] for lvl in range(len(sizes))], axis=1).astype(np.int64)


@lru_cache(maxsize=None)
def catalogue(name: str) -> tuple[np.ndarray, list[int], Brute, SIDTrie]:
    sizes, n, used, seed = CATALOGUES[name]
    codes = make_codes(sizes, n, used, seed)
    brute = Brute([tuple(int(v) for v in row) for row in codes], sizes)
    trie = SIDTrie.from_codes(codes, codebook_sizes=sizes)
    return codes, sizes, brute, trie


def invalid_prefixes(
    brute: Brute, sizes: list[int], t: int, rng: np.random.Generator, m: int = 50
) -> list[tuple[int, ...]]:
    """Length-t prefixes that are not real: random in-range ones plus out-of-range codes (-1, K, huge)."""
    out: list[tuple[int, ...]] = []
    for _ in range(20 * m):
        p = tuple(int(rng.integers(sizes[d])) for d in range(t))
        if p not in brute.items:
            out.append(p)
        if len(out) >= m:
            break
    real = brute.prefixes(t)
    for base in real[:5]:
        for d in range(t):
            for bad in (-1, sizes[d], sizes[d] + 7, 10**12):
                out.append(base[:d] + (bad,) + base[d + 1 :])
    return out


def ref_logsumexp(values: list[float]) -> float:
    """float64 math logsumexp with the usual conventions for infinities (empty -> -inf)."""
    if not values:
        return -math.inf
    mx = max(values)
    if math.isinf(mx):
        return mx
    return mx + math.log(sum(math.exp(v - mx) for v in values))


# ---------------------------------------------------------------------------------- structure


@pytest.mark.parametrize("name", list(CATALOGUES))
def test_layout_and_counts(name: str) -> None:
    codes, sizes, brute, trie = catalogue(name)
    n, L = codes.shape
    assert trie.n_items == n and trie.depth == L and trie.codebook_sizes == sizes
    for t in range(L + 1):
        assert trie.num_nodes(t) == len(brute.prefixes(t))
    # order is the lexicographic order of the tuples; rank_of_item its inverse
    expect_order = sorted(range(n), key=lambda i: brute.tuples[i])
    assert trie.order.tolist() == expect_order
    assert trie.rank_of_item[trie.order].tolist() == list(range(n))
    assert trie.codes.tolist() == codes.tolist()
    for t in range(L):
        keys = trie.child_keys[t]
        assert bool((keys[1:] > keys[:-1]).all()), "child_keys must be strictly increasing"
        assert trie.max_children[t] == max(len(brute.children[p]) for p in brute.prefixes(t))


@pytest.mark.parametrize("dense_limit", [None, 0], ids=["default_dense_tables", "csr_only"])
@pytest.mark.parametrize("name", list(CATALOGUES))
def test_nodes_step_and_allowed_masks(name: str, dense_limit: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    codes, sizes, brute, trie = catalogue(name)
    if dense_limit is not None:  # the CSR path of allowed_mask at every depth
        monkeypatch.setattr(trie_module, "_DENSE_MASK_LIMIT", dense_limit)
        trie = SIDTrie.from_codes(codes, codebook_sizes=sizes)
        assert all(m is None for m in trie.dense_masks)
    rng = np.random.default_rng(123)
    L = codes.shape[1]
    for t in range(L + 1):
        real = brute.prefixes(t)
        nodes = trie.nodes_of_prefixes(torch.tensor(real, dtype=torch.long).reshape(len(real), t))
        # nodes are numbered 0..N-1 in lexicographic prefix order
        assert nodes.tolist() == list(range(len(real)))
        bad = invalid_prefixes(brute, sizes, t, rng) if t > 0 else []
        if bad:
            bad_nodes = trie.nodes_of_prefixes(torch.tensor(bad, dtype=torch.long))
            assert bad_nodes.tolist() == [-1] * len(bad)
        if t == L:
            continue
        k = sizes[t]
        expect = np.zeros((len(real), k), dtype=bool)
        for r, p in enumerate(real):
            expect[r, sorted(brute.children[p])] = True
        query = torch.cat([nodes, torch.tensor([-1, len(real), 10**9])])  # plus invalid node ids
        mask = trie.allowed_mask(t, query)
        assert mask.shape == (len(real) + 3, k) and mask.dtype == torch.bool
        assert_close(mask[: len(real)], torch.from_numpy(expect))
        assert not bool(mask[len(real) :].any())
        # padded allowed_codes agree with the mask and are increasing within a row
        pc, valid = trie.allowed_codes(t, query, pad=-5)
        assert pc.shape[1] == trie.max_children[t]
        assert bool((pc[~valid] == -5).all())
        for r in range(len(real)):
            assert pc[r][valid[r]].tolist() == sorted(brute.children[real[r]])
        kids, kcodes, kvalid = trie.allowed_children(t, query)
        assert torch.equal(kvalid, valid) and torch.equal(kcodes[valid], pc[valid])
        assert torch.equal(trie.step(t, query.unsqueeze(1), kcodes)[valid], kids[valid])
        # step: every (prefix, code) pair, real children give the child's node id, others -1
        codes_all = torch.arange(-1, k + 1)
        nxt = trie.step(t, nodes.unsqueeze(1), codes_all.unsqueeze(0))
        child_index = {p: j for j, p in enumerate(brute.prefixes(t + 1))}
        expect_next = np.full((len(real), k + 2), -1, dtype=np.int64)
        for r, p in enumerate(real):
            for v in brute.children[p]:
                expect_next[r, v + 1] = child_index[p + (v,)]
        assert_close(nxt, torch.from_numpy(expect_next))
        assert trie.next_node(t, torch.tensor([-1]), torch.tensor([0])).tolist() == [-1]
        # parent() inverts step
        if len(real):
            kids = torch.arange(trie.num_nodes(t + 1))
            par = trie.parent(t + 1, kids)
            expect_par = [real.index(q[:t]) for q in brute.prefixes(t + 1)] if len(real) < 400 else None
            if expect_par is not None:
                assert par.tolist() == expect_par
            assert bool((trie.step(t, par, trie.child_codes[t]) == kids).all())


@pytest.mark.parametrize("name", list(CATALOGUES))
def test_items_under_and_ranges(name: str) -> None:
    codes, sizes, brute, trie = catalogue(name)
    rng = np.random.default_rng(7)
    L = codes.shape[1]
    for t in range(L + 1):
        real = brute.prefixes(t)
        sample = [real[i] for i in rng.choice(len(real), size=min(len(real), 60), replace=False)]
        for p in sample:
            got = trie.items_under(list(p))
            assert set(got.tolist()) == brute.items[p]
            assert [brute.tuples[i] for i in got.tolist()] == sorted(brute.tuples[i] for i in brute.items[p])
        nodes = trie.nodes_of_prefixes(torch.tensor(real, dtype=torch.long).reshape(len(real), t))
        start, end = trie.item_range(t, nodes)
        assert (end - start).tolist() == [len(brute.items[p]) for p in real]
        s, e = trie.item_range(t, torch.tensor([-1, 10**9]))
        assert s.tolist() == [0, 0] and e.tolist() == [0, 0]
        if t > 0:
            for p in invalid_prefixes(brute, sizes, t, rng, m=5)[:8]:
                assert trie.items_under(list(p)).numel() == 0
    leaves = trie.nodes_of_prefixes(torch.from_numpy(codes))
    assert_close(trie.leaf_items(leaves), torch.arange(len(codes)))
    assert_close(trie.leaf_of_items(torch.arange(len(codes))), leaves)


# ---------------------------------------------------------------------------------- tokens


@pytest.mark.parametrize("name", ["full_3x3", "four_levels_mixed", "sparse_usage_256", "wide_300_cubed"])
def test_token_trie(name: str) -> None:
    codes, sizes, brute, trie = catalogue(name)
    rng = np.random.default_rng(11)
    vocab = sum(sizes) + 137
    perm = rng.permutation(vocab)
    offsets = np.cumsum([0, *sizes])
    tok_ids = [torch.from_numpy(perm[offsets[lvl] : offsets[lvl + 1]].copy()) for lvl in range(len(sizes))]
    tt = TokenTrie(trie, tok_ids, vocab)
    for t in range(len(sizes)):
        real = brute.prefixes(t)
        if len(real) > 500:
            real = [real[i] for i in sorted(rng.choice(len(real), size=500, replace=False))]
        nodes = trie.nodes_of_prefixes(torch.tensor(real, dtype=torch.long).reshape(len(real), t))
        nodes = torch.cat([nodes, torch.tensor([-1])])
        expect = np.zeros((len(nodes), vocab), dtype=bool)
        for r, p in enumerate(real):
            expect[r, tok_ids[t][sorted(brute.children[p])].numpy()] = True
        mask = tt.allowed_token_mask(t, nodes)
        assert mask.shape == (len(nodes), vocab)
        assert_close(mask, torch.from_numpy(expect))
        ids, valid = tt.allowed_token_ids(t, nodes, pad_id=0)
        assert ids.shape == valid.shape == (len(nodes), trie.max_children[t])
        for r in range(len(nodes)):
            assert set(ids[r][valid[r]].tolist()) == set(np.flatnonzero(expect[r]).tolist())
        assert bool((ids[~valid] == 0).all())
        # gathering logits through the padded ids == masking the full vocabulary
        logits = torch.randn(len(nodes), vocab)
        g = logits.gather(1, ids).masked_fill(~valid, float("-inf"))
        assert_close(torch.logsumexp(g, 1), torch.logsumexp(logits.masked_fill(~mask, float("-inf")), 1))
        # token_to_code: level tokens -> codes, every other token (other levels, text) -> -1
        all_tok = torch.arange(-2, vocab + 2)
        code = tt.token_to_code(t, all_tok)
        expect_code = torch.full((vocab + 4,), -1, dtype=torch.long)
        expect_code[tok_ids[t] + 2] = torch.arange(sizes[t])
        assert_close(code, expect_code)
        assert_close(tt.code_to_token(t, torch.arange(sizes[t])), tok_ids[t])
        # step by token == step by code
        if len(real):
            c0 = torch.tensor([min(brute.children[p]) for p in real] + [0])
            assert_close(tt.step(t, nodes, tok_ids[t][c0]), trie.step(t, nodes, c0))


def test_token_trie_validation() -> None:
    trie = SIDTrie.from_codes([[0, 1], [1, 0]], codebook_sizes=[2, 2])
    with pytest.raises(ValueError, match="levels"):
        TokenTrie(trie, [torch.tensor([0, 1])], 10)
    with pytest.raises(ValueError, match="2 codes but 3"):
        TokenTrie(trie, [torch.tensor([0, 1, 2]), torch.tensor([3, 4])], 10)
    with pytest.raises(ValueError, match="vocab_size"):
        TokenTrie(trie, [torch.tensor([0, 1]), torch.tensor([3, 10])], 10)
    with pytest.raises(ValueError, match="not unique"):
        TokenTrie(trie, [torch.tensor([0, 1]), torch.tensor([3, 3])], 10)
    shared = TokenTrie(trie, [torch.tensor([5, 6]), torch.tensor([5, 6])], 10)  # shared code vocabulary
    assert shared.token_to_code(1, torch.tensor([6, 7])).tolist() == [1, -1]


# ---------------------------------------------------------------------------------- log-sum-exp


def brute_segment_lse(brute: Brute, prefix: tuple[int, ...] | None, scores: np.ndarray, cand: list[int]) -> list[float]:
    out = []
    for v in cand:
        items = brute.items.get(prefix + (v,), set()) if prefix is not None else set()
        out.append(ref_logsumexp([float(scores[i]) for i in sorted(items)]))
    return out


@pytest.mark.parametrize("name", list(CATALOGUES))
def test_segment_logsumexp_matches_brute_force(name: str) -> None:
    codes, sizes, brute, trie = catalogue(name)
    rng = np.random.default_rng(99)
    n, L = codes.shape
    B = 6
    scores = rng.normal(size=(B, n)) * np.array([1.0, 30.0, 1e4, 1.0, 1.0, 1.0])[:, None]
    scores[3] -= 1e30  # all scores tiny in absolute terms: a shared shift must not underflow
    scores[4, rng.random(n) < 0.3] = -np.inf  # absent-ish items, including whole segments
    for dtype in (torch.float64, torch.float32):
        s_t = torch.tensor(scores, dtype=dtype)
        s_ref = s_t.double().numpy()
        for t in range(L):
            real = brute.prefixes(t)
            rows = [real[i] for i in rng.choice(len(real), size=B)]
            nodes = trie.nodes_of_prefixes(torch.tensor(rows, dtype=torch.long).reshape(B, t))
            prefixes: list[tuple[int, ...] | None] = list(rows)
            nodes[5] = -1  # an invalid node -> every candidate -inf
            prefixes[5] = None
            cands = []
            for r in range(B):
                kids = sorted(brute.children.get(rows[r], set()))
                others = [int(v) for v in rng.integers(0, sizes[t], size=6)]
                cands.append((kids + others)[:8] + [-1, sizes[t]] + [kids[0]] * (10 - len((kids + others)[:8])))
            cand = torch.tensor(cands)
            got = trie.segment_logsumexp(t, nodes, s_t, cand)
            assert got.dtype == dtype and got.shape == cand.shape
            expect = torch.tensor(
                [brute_segment_lse(brute, prefixes[r], s_ref[r], cands[r]) for r in range(B)], dtype=torch.float64
            )
            tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-6, atol=1e-5)
            assert_close(got.double(), expect, **tol)
            # all codes of the level (candidate_codes=None) for the first row
            full = trie.segment_logsumexp(t, nodes[:1], s_t[:1])
            assert full.shape == (1, sizes[t])
            full_ref = brute_segment_lse(brute, prefixes[0], s_ref[0], list(range(sizes[t])))
            full_expect = torch.tensor([full_ref], dtype=torch.float64)
            assert_close(full.double(), full_expect, **tol)


def test_logsumexp_extremes_and_node_level() -> None:
    codes = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [3, 5]])
    trie = SIDTrie.from_codes(codes, codebook_sizes=[4, 6])
    inf = math.inf
    scores = torch.tensor(
        [
            [1e4, 1e4, -1e4, -1e4 + 1.0, 0.0, 3.0],  # naive exp overflows / underflows in float32
            [inf, 0.0, -inf, -inf, float("nan"), 2.0],  # +inf segment, all -inf segment, NaN
        ]
    )
    got = trie.node_logsumexp(1, scores)
    expect = torch.tensor(
        [
            [1e4 + math.log(2.0), -1e4 + 1.0 + math.log1p(math.exp(-1.0)), 0.0, 3.0],
            [inf, -inf, float("nan"), 2.0],
        ]
    )
    assert_close(got, expect, equal_nan=True)
    assert_close(trie.node_logsumexp(0, scores[:1]), torch.logsumexp(scores[:1], 1, keepdim=True))
    assert_close(trie.node_logsumexp(2, scores), scores[:, trie.order], equal_nan=True)
    # half precision input is computed and returned in float32
    assert trie.node_logsumexp(1, scores[:1].half()).dtype == torch.float32
    seg = trie.segment_logsumexp(0, torch.tensor([0, 0]), scores, torch.tensor([[0, 1, 3, 2], [0, 1, 2, 3]]))
    assert_close(seg, torch.stack([expect[0, [0, 1, 3, 2]], expect[1]]), equal_nan=True)
    with pytest.raises(ValueError, match="n_items"):
        trie.node_logsumexp(1, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="rows"):
        trie.segment_logsumexp(0, torch.tensor([0]), scores)


# ---------------------------------------------------------------------------------- errors, devices, determinism


def test_input_validation_errors() -> None:
    with pytest.raises(ValueError, match=r"duplicate SID \(1, 2\) for items 0 and 2"):
        SIDTrie.from_codes(np.array([[1, 2], [0, 1], [1, 2]]))
    with pytest.raises(ValueError, match="negative SID code -3 for item 1 at level 0"):
        SIDTrie.from_codes(np.array([[1, 2], [-3, 1]]))
    with pytest.raises(ValueError, match="SID code 4 for item 1 at level 1 is >= the codebook size 4"):
        SIDTrie.from_codes(np.array([[1, 2], [0, 4]]), codebook_sizes=[2, 4])
    with pytest.raises(ValueError, match="ragged"):
        SIDTrie.from_codes([[1, 2], [0, 1, 3]])
    with pytest.raises(ValueError, match="integer"):
        SIDTrie.from_codes(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="integers"):
        SIDTrie.from_codes(np.array([[1.5, 2.0]]))
    with pytest.raises(ValueError, match="2-D"):
        SIDTrie.from_codes(np.zeros((2, 2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="empty"):
        SIDTrie.from_codes(np.zeros((0, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="3 entries but the SIDs have 2 levels"):
        SIDTrie.from_codes(np.array([[1, 2]]), codebook_sizes=[4, 4, 4])
    trie = SIDTrie.from_codes(torch.tensor([[1, 2], [0, 1]]))
    assert trie.codebook_sizes == [2, 3]
    with pytest.raises(ValueError, match="depth 2 out of range"):
        trie.allowed_mask(2, torch.tensor([0]))
    with pytest.raises(ValueError, match="longer than the SIDs"):
        trie.nodes_of_prefixes(torch.zeros(1, 3, dtype=torch.long))


def test_device_round_trip() -> None:
    codes, sizes, brute, trie = catalogue("four_levels_mixed")
    assert trie.device == torch.device("cpu")
    same = trie.to("cpu")
    assert same is trie and trie.to(torch.device("cpu")) is trie
    moved = SIDTrie.from_codes(torch.from_numpy(codes), codebook_sizes=sizes, device=torch.device("cpu"))
    nodes = trie.nodes_of_prefixes(torch.from_numpy(codes[:50, :2]))
    assert_close(moved.allowed_mask(2, nodes), trie.allowed_mask(2, nodes))
    if torch.cuda.is_available():
        gpu = trie.to("cuda")
        assert gpu.device.type == "cuda" and gpu.order.device.type == "cuda"
        assert_close(gpu.allowed_mask(2, nodes.cuda()).cpu(), trie.allowed_mask(2, nodes))
        scores = torch.randn(4, len(codes), dtype=torch.float64)
        n0 = trie.nodes_of_prefixes(torch.from_numpy(codes[:4, :1]))
        assert_close(
            gpu.segment_logsumexp(1, n0.cuda(), scores.cuda()).cpu(), trie.segment_logsumexp(1, n0, scores)
        )
        back = gpu.to("cpu")
        for a, b in zip(back.child_keys + back.item_indptr, trie.child_keys + trie.item_indptr):
            assert a.device.type == "cpu"
            assert_close(a, b)


def test_determinism() -> None:
    codes, sizes, _, trie = catalogue("sparse_usage_256")
    again = SIDTrie.from_codes(codes.copy(), codebook_sizes=sizes)
    def arrays(tr: SIDTrie) -> list[torch.Tensor]:
        return [tr.order, tr.rank_of_item, *tr.child_keys, *tr.child_codes, *tr.child_indptr, *tr.item_indptr]

    for a, b in zip(arrays(trie), arrays(again)):
        assert torch.equal(a, b)
    scores = torch.randn(6, len(codes), generator=torch.Generator().manual_seed(0))
    nodes = torch.zeros(6, dtype=torch.long)
    r1 = trie.segment_logsumexp(0, nodes, scores)
    r2 = again.segment_logsumexp(0, nodes, scores.clone())
    assert torch.equal(r1, r2)
    n1 = trie.nodes_of_prefixes(torch.from_numpy(codes[:, :2]))
    assert torch.equal(trie.segment_logsumexp(2, n1[:6], scores), again.segment_logsumexp(2, n1[:6], scores))
