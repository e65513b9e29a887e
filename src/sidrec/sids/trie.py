"""Prefix trie over semantic-ID (SID) codes, queried with batched tensor lookups.

Every item has a SID: a fixed-length tuple of `L` integer codes, one per level, level `l` drawing
from a codebook of `K_l` codes (`<a_12><b_201><c_7>` is the tuple `(12, 201, 7)`). Tuples are
unique per item. Constrained decoding walks this trie level by level, for every beam at once, so
each query here is a handful of tensor ops on the trie's device (CPU or CUDA): no Python dict walk
per beam, no Python loop over the batch, and no host/device synchronisation in the per-step
queries (`allowed_mask`, `allowed_codes`, `step`, `item_range`, `segment_logsumexp`).

Data layout (`SIDTrie`, everything int64 on `trie.device`)
----------------------------------------------------------
* Items are sorted lexicographically by code tuple. `order[r]` is the item index at sorted rank
  `r`; `rank_of_item[i]` is the inverse permutation. `codes[i]` is item `i`'s tuple (original order).
* Depth `t` (0..L) holds the distinct length-`t` prefixes, numbered in lexicographic order:
  depth 0 has one node (the root, node 0, the empty prefix); depth `L` nodes are the items
  themselves and leaf node `r` is the item at sorted rank `r` (`order[r]`).
* Because both items and nodes are in lexicographic order, the items under a depth-`t` node form a
  contiguous run of sorted ranks: node `j` covers ranks `[item_indptr[t][j], item_indptr[t][j+1])`
  (`item_indptr[t]` has `num_nodes(t) + 1` entries, the last being `n_items`).
* The children of a depth-`t` node are contiguous depth-`t+1` node ids, CSR-style:
  node `j`'s children are `child_indptr[t][j] .. child_indptr[t][j+1] - 1` and the code leading
  to child `c` is `child_codes[t][c]` (level-`t` code, strictly increasing within a parent).
  `child_keys[t][c] = parent(c) * K_t + child_codes[t][c]` is therefore sorted, so the transition
  `(parent, code) -> child` is ONE `torch.searchsorted` over `child_keys[t]`. The array the child
  ids would be stored in ("child_node") is the identity: the position of a key in `child_keys[t]`
  IS the child's depth-`t+1` node id, so it is not stored.
* `node_of_rank[t][r]` (t = 1..L-1) is the depth-`t` node containing sorted rank `r`: the segment
  ids used by `node_logsumexp` / `segment_logsumexp`.
* `dense_masks[t]` (derived, shallow depths only): BoolTensor [num_nodes(t), K_t] when that table
  has at most 2**20 entries, so `allowed_mask` there is one row gather; None at deeper depths.

Memory is O(n_items * L) (CSR; a dense `[nodes, K]` table only where it is <= 1 MiB): about 10
int64 words per item for L = 3, i.e. ~80 MB for 1M items. Small Python-int metadata
(`codebook_sizes`, `num_nodes`, `max_children`) lives on the host so shapes never need a sync.

`TokenTrie` adds the LLM token-id view: level-`l` code `c` is vocabulary token
`token_ids_per_level[l][c]`; it returns full-vocabulary masks, padded per-node token-id lists (cheap
for gathering logits) and token -> code lookups.

Index conventions: `depth` in a query is the number of codes already fixed (the depth of the
`nodes` passed in); the codes that may come next are level-`depth` codes (0-based level). Invalid
nodes are `-1`; every query accepts `-1` (or any out-of-range id) and answers "nothing allowed",
`-1`, an empty range or `-inf`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["SIDTrie", "TokenTrie"]

DeviceLike = str | torch.device
# Rows x items processed at once by the log-sum-exp reductions (bounds temporary memory to a few
# hundred MB whatever the batch: the [B, n_items] input itself is the caller's).
_LSE_CHUNK_ELEMENTS = 1 << 24
# Depths whose full [num_nodes, K] boolean table has at most this many entries (1 MiB) keep it
# dense for a one-gather `allowed_mask` (depth 0 and 1 of a 256-code trie); deeper ones use CSR.
_DENSE_MASK_LIMIT = 1 << 20


def _as_device(device: DeviceLike) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _codes_to_numpy(codes: Any) -> np.ndarray:
    """int64 [n, L] numpy copy of `codes` (ndarray, tensor or nested sequence); ValueError if ragged."""
    if isinstance(codes, torch.Tensor):
        if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
            raise ValueError(f"SID codes must be an integer tensor, got dtype {codes.dtype}")
        arr = codes.detach().to("cpu").numpy()
    else:
        try:
            arr = np.asarray(codes)
        except ValueError as exc:  # numpy >= 1.24 refuses ragged nested sequences
            raise ValueError(f"SID codes are ragged (items with different numbers of levels): {exc}") from exc
        if arr.dtype == object:
            raise ValueError("SID codes are ragged (items with different numbers of levels) or not integers")
    if arr.ndim != 2:
        raise ValueError(f"SID codes must be a 2-D array [n_items, n_levels], got shape {tuple(arr.shape)}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"SID codes must be integers, got dtype {arr.dtype}")
    if arr.shape[0] == 0:
        raise ValueError("SID codes are empty: a trie needs at least one item")
    if arr.shape[1] == 0:
        raise ValueError("SID codes have zero levels: every SID needs at least one code")
    return np.array(arr, dtype=np.int64, order="C", copy=True)  # never alias the caller's array


def _padded_children(
    indptr: torch.Tensor, child_codes: torch.Tensor, nodes: torch.Tensor, width: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Children of each node in a padded [B, width] layout: (child node ids, codes, valid).

    Padded slots (and every slot of an invalid node) have child id 0, code 0 and valid False.
    """
    n_nodes = indptr.numel() - 1
    ok = (nodes >= 0) & (nodes < n_nodes)
    safe = torch.where(ok, nodes, torch.zeros_like(nodes))
    start = indptr[safe]
    count = torch.where(ok, indptr[safe + 1] - start, torch.zeros_like(start))
    offs = torch.arange(width, device=nodes.device, dtype=torch.long)
    valid = offs.unsqueeze(0) < count.unsqueeze(1)
    zero = torch.zeros((), dtype=torch.long, device=nodes.device)
    child = torch.where(valid, start.unsqueeze(1) + offs.unsqueeze(0), zero)
    codes = torch.where(valid, child_codes[child], zero)
    return child, codes, valid


def _scatter_mask(cols: torch.Tensor, valid: torch.Tensor, width: int) -> torch.Tensor:
    """Contiguous BoolTensor [B, width], True at (b, cols[b, j]) where valid[b, j].

    One flat scatter into B * width + 1 slots: invalid entries all land on the extra last slot,
    which is dropped, so no write conflicts and the result is a contiguous view.
    """
    b = cols.shape[0]
    flat = torch.arange(b, device=cols.device, dtype=torch.long).unsqueeze(1) * width + cols
    flat = torch.where(valid, flat, torch.full((), b * width, dtype=torch.long, device=cols.device))
    out = torch.zeros(b * width + 1, dtype=torch.bool, device=cols.device)
    out[flat.reshape(-1)] = True
    return out[: b * width].view(b, width)


class SIDTrie:
    """Prefix trie of unique SID code tuples with batched, vectorised tensor queries.

    Build with `SIDTrie.from_codes`. See the module docstring for the data layout. Attributes
    (read-only by convention): `codes [n, L]`, `order [n]`, `rank_of_item [n]`,
    `child_keys[t]`, `child_codes[t]`, `child_indptr[t]` (t = 0..L-1), `item_indptr[t]`
    (t = 0..L), `node_of_rank[t]` (t = 1..L-1; None at 0 and L), `dense_masks[t]` (t = 0..L-1;
    None where CSR only), `codebook_sizes`, `max_children` (widest fan-out per depth, host ints).
    """

    def __init__(
        self,
        *,
        codes: torch.Tensor,
        order: torch.Tensor,
        rank_of_item: torch.Tensor,
        child_keys: list[torch.Tensor],
        child_codes: list[torch.Tensor],
        child_indptr: list[torch.Tensor],
        item_indptr: list[torch.Tensor],
        node_of_rank: list[torch.Tensor | None],
        codebook_sizes: list[int],
        max_children: list[int],
    ) -> None:
        """Low-level constructor from already-built arrays (use `from_codes`)."""
        self.codes = codes
        self.order = order
        self.rank_of_item = rank_of_item
        self.child_keys = child_keys
        self.child_codes = child_codes
        self.child_indptr = child_indptr
        self.item_indptr = item_indptr
        self.node_of_rank = node_of_rank
        self.codebook_sizes = list(codebook_sizes)
        self.max_children = list(max_children)
        self._num_nodes = [int(p.numel()) - 1 for p in item_indptr]
        # dense_masks[t]: BoolTensor [num_nodes(t), K_t] for shallow depths (<= _DENSE_MASK_LIMIT
        # entries), else None (CSR only). Derived data: rebuilt here, never passed in.
        self.dense_masks: list[torch.Tensor | None] = []
        for t, k in enumerate(self.codebook_sizes):
            if self._num_nodes[t] * k <= _DENSE_MASK_LIMIT:
                nodes = torch.arange(self._num_nodes[t], dtype=torch.long, device=order.device)
                _, ccodes, valid = _padded_children(child_indptr[t], child_codes[t], nodes, self.max_children[t])
                self.dense_masks.append(_scatter_mask(ccodes, valid, k))
            else:
                self.dense_masks.append(None)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_codes(
        cls,
        codes: np.ndarray | torch.Tensor | Sequence[Sequence[int]],
        codebook_sizes: Sequence[int] | None = None,
        device: DeviceLike = "cpu",
    ) -> SIDTrie:
        """Build the trie from `codes [n_items, L]` (row i = item i's SID tuple).

        `codebook_sizes[l]` is `K_l`, the number of codes of level l (None: max code + 1 per level).
        Raises ValueError on ragged / non-integer / empty input, negative codes, codes >= the
        codebook size, or duplicate tuples (SIDs must be unique; the message names the items).
        The build runs in numpy on the host, then the arrays move to `device` ("cpu", "cuda[:N]",
        "auto" or a torch.device).
        """
        arr = _codes_to_numpy(codes)
        n, n_levels = arr.shape
        neg = np.argwhere(arr < 0)
        if len(neg):
            i, lvl = (int(v) for v in neg[0])
            raise ValueError(
                f"negative SID code {int(arr[i, lvl])} for item {i} at level {lvl} ({len(neg)} negative codes in all)"
            )
        observed = arr.max(axis=0) + 1
        if codebook_sizes is None:
            sizes = [int(v) for v in observed]
        else:
            sizes = [int(v) for v in codebook_sizes]
            if len(sizes) != n_levels:
                raise ValueError(f"codebook_sizes has {len(sizes)} entries but the SIDs have {n_levels} levels")
            for lvl, k in enumerate(sizes):
                if k < 1:
                    raise ValueError(f"codebook size of level {lvl} must be >= 1, got {k}")
                too_big = np.flatnonzero(arr[:, lvl] >= k)
                if len(too_big):
                    i = int(too_big[0])
                    raise ValueError(
                        f"SID code {int(arr[i, lvl])} for item {i} at level {lvl} is >= the codebook size {k} "
                        f"({len(too_big)} items out of range at this level)"
                    )

        # Lexicographic sort: np.lexsort's primary key is the LAST key, hence the reversal.
        order = np.lexsort(arr.T[::-1]) if n_levels > 1 else np.argsort(arr[:, 0], kind="stable")
        sorted_codes = arr[order]
        # differs[r - 1, l]: rank r's level-l code differs from rank r-1's.
        differs = sorted_codes[1:] != sorted_codes[:-1]
        dup = np.flatnonzero(~differs.any(axis=1))
        if len(dup):
            r = int(dup[0])
            a, b = sorted(int(v) for v in order[r : r + 2])
            raise ValueError(
                f"duplicate SID {tuple(int(v) for v in sorted_codes[r])} for items {a} and {b} "
                f"({len(dup)} duplicate rows in all): SIDs must be unique per item (add a de-duplication level)"
            )

        rank_of_item = np.empty(n, dtype=np.int64)
        rank_of_item[order] = np.arange(n, dtype=np.int64)

        # new_prefix[r]: rank r starts a new depth-t node (prefix of length t differs from rank r-1's).
        item_indptr: list[np.ndarray] = [np.array([0, n], dtype=np.int64)]
        node_of_rank: list[np.ndarray | None] = [None]
        new_prefix = np.zeros(n, dtype=bool)
        new_prefix[0] = True
        for t in range(1, n_levels + 1):
            new_prefix[1:] |= differs[:, t - 1]
            starts = np.flatnonzero(new_prefix).astype(np.int64)
            item_indptr.append(np.concatenate([starts, np.array([n], dtype=np.int64)]))
            node_of_rank.append(np.cumsum(new_prefix, dtype=np.int64) - 1 if t < n_levels else None)

        child_keys: list[np.ndarray] = []
        child_codes: list[np.ndarray] = []
        child_indptr: list[np.ndarray] = []
        max_children: list[int] = []
        for t in range(n_levels):
            child_starts = item_indptr[t + 1][:-1]  # first sorted rank of each depth-(t+1) node
            if t == 0:
                parent = np.zeros(len(child_starts), dtype=np.int64)
            else:
                parent = node_of_rank[t][child_starts]  # type: ignore[index]
            ccodes = sorted_codes[child_starts, t]
            counts = np.bincount(parent, minlength=len(item_indptr[t]) - 1)
            indptr = np.zeros(len(counts) + 1, dtype=np.int64)
            np.cumsum(counts, out=indptr[1:])
            child_keys.append(parent * sizes[t] + ccodes)
            child_codes.append(ccodes)
            child_indptr.append(indptr)
            max_children.append(int(counts.max()))

        dev = _as_device(device)

        def tt(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)).to(dev)

        return cls(
            codes=tt(arr),
            order=tt(order),
            rank_of_item=tt(rank_of_item),
            child_keys=[tt(a) for a in child_keys],
            child_codes=[tt(a) for a in child_codes],
            child_indptr=[tt(a) for a in child_indptr],
            item_indptr=[tt(a) for a in item_indptr],
            node_of_rank=[None if a is None else tt(a) for a in node_of_rank],
            codebook_sizes=sizes,
            max_children=max_children,
        )

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        """Device every tensor of the trie lives on."""
        return self.order.device

    @property
    def n_items(self) -> int:
        """Number of items (= number of leaves)."""
        return int(self.order.numel())

    @property
    def depth(self) -> int:
        """Number of SID levels L (the depth of the leaves)."""
        return len(self.codebook_sizes)

    def num_nodes(self, depth: int) -> int:
        """Number of distinct length-`depth` prefixes (1 at depth 0, n_items at depth L)."""
        self._check_depth(depth, allow_leaf=True)
        return self._num_nodes[depth]

    def to(self, device: DeviceLike) -> SIDTrie:
        """A trie with every tensor on `device` (self when already there)."""
        dev = _as_device(device)
        if dev == self.device:
            return self

        def mv(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.to(dev)

        return SIDTrie(
            codes=self.codes.to(dev),
            order=self.order.to(dev),
            rank_of_item=self.rank_of_item.to(dev),
            child_keys=[x.to(dev) for x in self.child_keys],
            child_codes=[x.to(dev) for x in self.child_codes],
            child_indptr=[x.to(dev) for x in self.child_indptr],
            item_indptr=[x.to(dev) for x in self.item_indptr],
            node_of_rank=[mv(x) for x in self.node_of_rank],
            codebook_sizes=self.codebook_sizes,
            max_children=self.max_children,
        )

    def nbytes(self) -> int:
        """Bytes held by the trie's tensors."""
        tensors = [self.codes, self.order, self.rank_of_item, *self.child_keys, *self.child_codes]
        tensors += [*self.child_indptr, *self.item_indptr, *(x for x in self.node_of_rank if x is not None)]
        tensors += [x for x in self.dense_masks if x is not None]
        return sum(x.numel() * x.element_size() for x in tensors)

    def __repr__(self) -> str:
        return (
            f"SIDTrie(n_items={self.n_items}, codebook_sizes={self.codebook_sizes}, "
            f"num_nodes={self._num_nodes}, device={self.device})"
        )

    # ------------------------------------------------------------------ helpers
    def _check_depth(self, depth: int, *, allow_leaf: bool = False) -> None:
        hi = self.depth if allow_leaf else self.depth - 1
        if not 0 <= depth <= hi:
            what = "0..L" if allow_leaf else "0..L-1 (a node that still has a next code)"
            raise ValueError(f"depth {depth} out of range: expected {what} with L = {self.depth}")

    def _long(self, x: torch.Tensor | Sequence[int] | int) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.long, device=self.device)

    # ------------------------------------------------------------------ transitions
    def step(self, depth: int, nodes: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Depth-`depth+1` node reached from each depth-`depth` node by its level-`depth` code.

        `nodes` and `codes` broadcast together (e.g. nodes [B, 1] with codes [B, C]); the result
        has the broadcast shape, -1 where the node is invalid or the code is not one of its children.
        One `torch.searchsorted` over `child_keys[depth]`; no sync.
        """
        self._check_depth(depth)
        nodes = self._long(nodes)
        codes = self._long(codes)
        nodes, codes = torch.broadcast_tensors(nodes, codes)
        k = self.codebook_sizes[depth]
        keys_table = self.child_keys[depth]
        ok = (nodes >= 0) & (nodes < self._num_nodes[depth]) & (codes >= 0) & (codes < k)
        keys = torch.where(ok, nodes * k + codes, torch.zeros((), dtype=torch.long, device=self.device))
        pos = torch.searchsorted(keys_table, keys.contiguous())
        pos_c = pos.clamp(max=keys_table.numel() - 1)
        found = ok & (keys_table[pos_c] == keys)
        return torch.where(found, pos_c, torch.full((), -1, dtype=torch.long, device=self.device))

    next_node = step

    def nodes_of_prefixes(self, prefix_codes: torch.Tensor) -> torch.Tensor:
        """Node id of each prefix `prefix_codes [B, t]` (0 <= t <= L) at depth t; -1 if not a real prefix."""
        prefix_codes = self._long(prefix_codes)
        if prefix_codes.ndim != 2:
            raise ValueError(f"prefix_codes must be [B, t], got shape {tuple(prefix_codes.shape)}")
        t = prefix_codes.shape[1]
        if t > self.depth:
            raise ValueError(f"prefixes of length {t} are longer than the SIDs ({self.depth} levels)")
        nodes = torch.zeros(prefix_codes.shape[0], dtype=torch.long, device=self.device)
        for d in range(t):  # loop over levels (<= L), never over the batch
            nodes = self.step(d, nodes, prefix_codes[:, d])
        return nodes

    def parent(self, depth: int, nodes: torch.Tensor) -> torch.Tensor:
        """Depth-`depth-1` parent of each depth-`depth` node (1 <= depth <= L); -1 for invalid nodes."""
        if not 1 <= depth <= self.depth:
            raise ValueError(f"parent() needs 1 <= depth <= {self.depth}, got {depth}")
        nodes = self._long(nodes)
        ok = (nodes >= 0) & (nodes < self._num_nodes[depth])
        safe = torch.where(ok, nodes, torch.zeros_like(nodes))
        par = torch.div(self.child_keys[depth - 1][safe], self.codebook_sizes[depth - 1], rounding_mode="floor")
        return torch.where(ok, par, torch.full_like(par, -1))

    # ------------------------------------------------------------------ allowed next codes
    def allowed_codes(self, depth: int, nodes: torch.Tensor, pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Allowed next codes per node, padded: (codes [B, max_children[depth]], valid [B, max_children[depth]]).

        Codes of a node are in increasing order; padded slots hold `pad` with valid False. Invalid
        nodes get an all-False row. Width is the trie-wide maximum fan-out at this depth (host int).
        """
        self._check_depth(depth)
        nodes = self._long(nodes).reshape(-1)
        _, codes, valid = _padded_children(
            self.child_indptr[depth], self.child_codes[depth], nodes, self.max_children[depth]
        )
        if pad != 0:
            codes = codes.masked_fill(~valid, pad)
        return codes, valid

    def allowed_children(self, depth: int, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(child node ids, codes, valid), each [B, max_children[depth]]; padded slots 0 / 0 / False."""
        self._check_depth(depth)
        nodes = self._long(nodes).reshape(-1)
        return _padded_children(self.child_indptr[depth], self.child_codes[depth], nodes, self.max_children[depth])

    def allowed_mask(self, depth: int, nodes: torch.Tensor) -> torch.Tensor:
        """BoolTensor [B, K_depth] (contiguous): True where the level-`depth` code may follow the node's prefix.

        Shallow depths with a small dense table (`dense_masks[depth]`, num_nodes * K <= 2**20) are one
        row gather; deeper ones are built from the padded CSR children with one scatter. No loop over
        the batch, no sync; rows of invalid nodes (-1) are all False.
        """
        self._check_depth(depth)
        dense = self.dense_masks[depth]
        if dense is not None:
            nodes = self._long(nodes).reshape(-1)
            ok = (nodes >= 0) & (nodes < self._num_nodes[depth])
            rows = dense.index_select(0, torch.where(ok, nodes, torch.zeros_like(nodes)))
            return rows & ok.unsqueeze(1)
        codes, valid = self.allowed_codes(depth, nodes)
        return _scatter_mask(codes, valid, self.codebook_sizes[depth])

    # ------------------------------------------------------------------ items under a prefix
    def item_range(self, depth: int, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sorted-rank range `[start, end)` of the items under each depth-`depth` node (0 <= depth <= L).

        `order[start:end]` are the item indices; invalid nodes get (0, 0).
        """
        self._check_depth(depth, allow_leaf=True)
        nodes = self._long(nodes)
        indptr = self.item_indptr[depth]
        ok = (nodes >= 0) & (nodes < self._num_nodes[depth])
        safe = torch.where(ok, nodes, torch.zeros_like(nodes))
        zero = torch.zeros((), dtype=torch.long, device=self.device)
        return torch.where(ok, indptr[safe], zero), torch.where(ok, indptr[safe + 1], zero)

    def items_under(self, prefix: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Item indices (LongTensor, lexicographic SID order) whose SID starts with `prefix` (length 0..L).

        Empty when the prefix is not real. One host sync (the range bounds): a convenience, not a
        per-step decoding query.
        """
        prefix_t = self._long(prefix).reshape(1, -1)
        node = self.nodes_of_prefixes(prefix_t)
        start, end = self.item_range(prefix_t.shape[1], node)
        s, e = int(start.item()), int(end.item())
        return self.order[s:e]

    # ------------------------------------------------------------------ catalogue filters
    def allowed_counts(self, allowed: torch.Tensor) -> torch.Tensor:
        """Running counts of allowed items in sorted-rank order: `allowed [B, n_items]` (bool) →
        LongTensor [B, n_items + 1] whose column r is the number of allowed items among ranks < r.

        With it, `has_allowed` tells in O(1) per node whether any allowed item lies under it (the
        items of a node are one contiguous run of ranks)."""
        if allowed.ndim != 2 or allowed.shape[1] != self.n_items or allowed.dtype != torch.bool:
            raise ValueError(f"allowed must be a bool tensor [B, n_items={self.n_items}], got "
                             f"{allowed.dtype} {tuple(allowed.shape)}")
        ranked = allowed.to(self.device).index_select(1, self.order).long()
        return torch.nn.functional.pad(ranked.cumsum(1), (1, 0))

    def has_allowed(self, depth: int, nodes: torch.Tensor, rows: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """BoolTensor shaped like `nodes`: True where an allowed item of filter row `rows` (broadcast
        against `nodes`) lies under the depth-`depth` node (`counts` from `allowed_counts`)."""
        start, end = self.item_range(depth, nodes)
        rows = self._long(rows).expand_as(start)
        return counts[rows, end] > counts[rows, start]

    def leaf_items(self, nodes: torch.Tensor) -> torch.Tensor:
        """Item index of each depth-L node (-1 for invalid nodes)."""
        nodes = self._long(nodes)
        ok = (nodes >= 0) & (nodes < self.n_items)
        item = self.order[torch.where(ok, nodes, torch.zeros_like(nodes))]
        return torch.where(ok, item, torch.full_like(item, -1))

    def leaf_of_items(self, items: torch.Tensor) -> torch.Tensor:
        """Depth-L node id of each item index (its rank in the sorted order)."""
        return self.rank_of_item[self._long(items)]

    # ------------------------------------------------------------------ log-sum-exp over prefixes
    def node_logsumexp(self, depth: int, item_scores: torch.Tensor) -> torch.Tensor:
        """logsumexp of `item_scores [B, n_items]` over the items under EVERY depth-`depth` node: [B, num_nodes(depth)].

        Exact and stable: the items of a node are one contiguous run of sorted ranks, so
        `torch.segment_reduce` over the run lengths gives each run's maximum; every run is shifted by
        its own maximum and its exps (each in [0, 1], the max contributing exactly 1) are summed per
        run in float64, so very large and very small scores in different runs never interact and
        nothing is subtracted (no cumulative-sum cancellation). Deterministic (no atomics). +inf in a run gives
        +inf, a run of -inf gives -inf, NaN propagates. Output dtype: float64 for float64 input,
        else float32. Rows are processed in chunks to bound temporary memory.
        """
        self._check_depth(depth, allow_leaf=True)
        x = self._check_scores(item_scores)
        out_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        x = x.to(out_dtype)
        if depth == self.depth:
            return x[:, self.order]
        if depth == 0:
            return torch.logsumexp(x, dim=1, keepdim=True)
        seg = self.node_of_rank[depth]
        assert seg is not None
        indptr = self.item_indptr[depth]
        lengths = indptr[1:] - indptr[:-1]  # items per node, all >= 1
        rows = max(1, _LSE_CHUNK_ELEMENTS // max(1, self.n_items))
        zero = torch.zeros((), dtype=out_dtype, device=x.device)
        outs = []
        for lo in range(0, x.shape[0], rows):  # chunks of rows, not a per-row loop
            xs = x[lo : lo + rows].index_select(1, self.order)  # [b, n] in sorted order
            seg_len = lengths.unsqueeze(0).expand(xs.shape[0], -1)
            seg_max = torch.segment_reduce(xs, "max", lengths=seg_len, axis=1)  # NaN propagates
            finite_max = torch.isfinite(seg_max)
            shift = torch.where(finite_max, seg_max, zero)
            # Within a run with a finite max every term is exp(<= 0) in [0, 1] (-inf scores give 0);
            # runs with a non-finite max are overwritten below, so their terms may be anything.
            e = torch.exp(xs - shift.index_select(1, seg))
            seg_sum = torch.segment_reduce(e.to(torch.float64), "sum", lengths=seg_len, axis=1)
            lse = (shift.to(torch.float64) + torch.log(seg_sum)).to(out_dtype)
            outs.append(torch.where(finite_max, lse, seg_max))
        return torch.cat(outs, dim=0)

    def segment_logsumexp(
        self,
        depth: int,
        nodes: torch.Tensor,
        item_scores: torch.Tensor,
        candidate_codes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ILRec's collaborative reward before temperature: [B, C] log-sum-exp over prefix extensions.

        For row b with depth-`depth` prefix node `nodes[b]` and each candidate level-`depth` code
        `v = candidate_codes[b, c]`: `logsumexp(item_scores[b, i] for items i whose SID starts with
        (prefix(nodes[b]), v))`, -inf where no item has that prefix (v not a child, invalid node,
        out-of-range or padded code). `candidate_codes` None means every code of the level
        (C = K_depth). Divide `item_scores` by the temperature T beforehand for r_t(v) of methods.md
        §5. Vectorised: per-node log-sum-exp at depth+1 (`node_logsumexp`, O(B * n_items)) then one
        gather; at the last level (children are single items) just a gather of the scores.
        """
        self._check_depth(depth)
        nodes = self._long(nodes).reshape(-1)
        x = self._check_scores(item_scores)
        if x.shape[0] != nodes.shape[0]:
            raise ValueError(f"item_scores has {x.shape[0]} rows but {nodes.shape[0]} nodes were given")
        if candidate_codes is None:
            k = self.codebook_sizes[depth]
            candidate_codes = torch.arange(k, device=self.device).unsqueeze(0).expand(nodes.shape[0], k)
        cand = self._long(candidate_codes)
        if cand.ndim != 2 or cand.shape[0] != nodes.shape[0]:
            raise ValueError(f"candidate_codes must be [B={nodes.shape[0]}, C], got shape {tuple(cand.shape)}")
        child = self.step(depth, nodes.unsqueeze(1), cand)  # [B, C], -1 where absent
        if depth + 1 == self.depth:  # children are leaves: one item each, a plain gather (O(B * C))
            out_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
            vals = x.gather(1, self.order[child.clamp(min=0)]).to(out_dtype)
        else:
            per_node = self.node_logsumexp(depth + 1, x)  # [B, num_nodes(depth+1)]
            vals = per_node.gather(1, child.clamp(min=0))
        return vals.masked_fill(child < 0, float("-inf"))

    def _check_scores(self, item_scores: torch.Tensor) -> torch.Tensor:
        if item_scores.ndim != 2 or item_scores.shape[1] != self.n_items:
            raise ValueError(f"item_scores must be [B, n_items={self.n_items}], got shape {tuple(item_scores.shape)}")
        if not item_scores.is_floating_point():
            raise ValueError(f"item_scores must be floating point, got {item_scores.dtype}")
        return item_scores.to(self.device)


class TokenTrie:
    """LLM token-id view of a `SIDTrie`: level-`l` code `c` is vocabulary token `token_ids_per_level[l][c]`.

    Layout: `token_ids[l]` LongTensor [K_l] (code -> token id, unique within a level, in
    [0, vocab_size)); `code_of_token[l]` LongTensor [vocab_size] (token id -> level-l code, -1 for
    tokens that are not level-l SID tokens). Levels may share token ids (a shared code vocabulary);
    lookups are always per level.
    """

    def __init__(
        self, trie: SIDTrie, token_ids_per_level: Sequence[torch.Tensor | Sequence[int]], vocab_size: int
    ) -> None:
        if len(token_ids_per_level) != trie.depth:
            raise ValueError(f"token_ids_per_level has {len(token_ids_per_level)} levels but the trie has {trie.depth}")
        self.trie = trie
        self.vocab_size = int(vocab_size)
        self.token_ids: list[torch.Tensor] = []
        self.code_of_token: list[torch.Tensor] = []
        for lvl, ids in enumerate(token_ids_per_level):
            ids_t = torch.as_tensor(ids, dtype=torch.long).reshape(-1).to(trie.device)
            k = trie.codebook_sizes[lvl]
            if ids_t.numel() != k:
                raise ValueError(f"level {lvl} has {k} codes but {ids_t.numel()} token ids were given")
            if bool(((ids_t < 0) | (ids_t >= self.vocab_size)).any()):
                raise ValueError(f"level {lvl} token ids must lie in [0, vocab_size={self.vocab_size})")
            if torch.unique(ids_t).numel() != k:
                raise ValueError(f"level {lvl} token ids are not unique: two codes would share one token")
            inv = torch.full((self.vocab_size,), -1, dtype=torch.long, device=trie.device)
            inv[ids_t] = torch.arange(k, dtype=torch.long, device=trie.device)
            self.token_ids.append(ids_t)
            self.code_of_token.append(inv)

    @property
    def device(self) -> torch.device:
        return self.trie.device

    def to(self, device: DeviceLike) -> TokenTrie:
        """A token trie with every tensor on `device`."""
        dev = _as_device(device)
        if dev == self.device:
            return self
        return TokenTrie(self.trie.to(dev), [t.to(dev) for t in self.token_ids], self.vocab_size)

    def token_to_code(self, depth: int, token_ids: torch.Tensor) -> torch.Tensor:
        """Level-`depth` code of each token id (any shape); -1 for tokens that are not level-`depth` SID tokens."""
        self.trie._check_depth(depth)
        tok = torch.as_tensor(token_ids, dtype=torch.long, device=self.device)
        ok = (tok >= 0) & (tok < self.vocab_size)
        code = self.code_of_token[depth][torch.where(ok, tok, torch.zeros_like(tok))]
        return torch.where(ok, code, torch.full_like(code, -1))

    def code_to_token(self, depth: int, codes: torch.Tensor) -> torch.Tensor:
        """Token id of each level-`depth` code (codes must be in range)."""
        self.trie._check_depth(depth)
        return self.token_ids[depth][torch.as_tensor(codes, dtype=torch.long, device=self.device)]

    def step(self, depth: int, nodes: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        """Next node after emitting `token_ids` from depth-`depth` nodes; -1 where not allowed."""
        return self.trie.step(depth, nodes, self.token_to_code(depth, token_ids))

    def allowed_token_ids(self, depth: int, nodes: torch.Tensor, pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(token ids [B, max_children[depth]], valid [B, max_children[depth]]) of the allowed next tokens.

        Padded slots hold `pad_id` (a valid index, so `logits.gather(1, ids)` works directly; mask
        with `valid`). Cheaper than a full-vocabulary mask when only the allowed logits are needed.
        """
        codes, valid = self.trie.allowed_codes(depth, nodes)
        tok = self.token_ids[depth][codes]
        return tok.masked_fill(~valid, pad_id), valid

    def allowed_token_mask(self, depth: int, nodes: torch.Tensor) -> torch.Tensor:
        """BoolTensor [B, vocab_size]: True only on the token ids of the allowed next codes."""
        tok, valid = self.allowed_token_ids(depth, nodes)
        return _scatter_mask(tok, valid, self.vocab_size)

    def segment_logsumexp(
        self, depth: int, nodes: torch.Tensor, item_scores: torch.Tensor, candidate_token_ids: torch.Tensor
    ) -> torch.Tensor:
        """`SIDTrie.segment_logsumexp` with candidates given as token ids [B, C] (non-level tokens -> -inf)."""
        return self.trie.segment_logsumexp(depth, nodes, item_scores, self.token_to_code(depth, candidate_token_ids))
