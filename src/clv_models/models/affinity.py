"""Product affinity from co-purchases: which products to offer a customer next (decisions D43).

:class:`ProductAffinity` is fitted on distinct ``(customer_id, product_id)`` pairs (who bought
what before the cutoff). Let X be the binary customer × product matrix, ``n_i`` the number of
customers who bought product i and ``c_ij`` the number who bought both i and j. Methods:

* ``cosine`` (item-item collaborative filtering, Sarwar et al. 2001; Deshpande & Karypis 2004):
  ``sim(i, j) = c_ij / sqrt(n_i n_j)``.
* ``lift`` (association rules): ``lift(i, j) = c_ij N / (n_i n_j)`` with N customers, for pairs
  bought together by at least ``min_pair_customers`` customers (lift of one co-purchase of two
  rare products is huge and means nothing).
* ``popularity``: no similarity; the most bought products (the baseline every method is judged
  against).

Only the ``neighbours`` most similar products of each product are kept (ties: the smaller
product id), so the fitted model is a few arrays of ``products × neighbours``, never the
training pairs. A customer's score of product j is the sum of ``sim(i, j)`` over the products i
they bought; recommendations are the k products they have not bought, by score, then by
popularity (number of customers), then by product id. Products with no score are therefore
filled in by popularity, so every customer with fewer than ``k`` similar products still gets
``k`` recommendations (when the catalogue has them). A customer's recommendations depend only on
their own products: the same alone or in any batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    import pandas as pd

METHODS = ("cosine", "lift", "popularity")
SEPARATOR = "|"  # recommended_products is the product ids joined by this (decisions D43)


def _binary_matrix(pairs: pd.DataFrame) -> tuple[Any, np.ndarray]:
    """(CSR customer × product 0/1 matrix, the catalogue: distinct product ids, sorted)."""
    import pandas as pd
    from scipy import sparse

    row_index, customers = pd.factorize(pairs["customer_id"].astype(str), sort=True)
    cols, catalogue = pd.factorize(pairs["product_id"].astype(str), sort=True)
    data = np.ones(len(cols), dtype=np.float64)
    matrix = sparse.csr_matrix((data, (row_index, cols)), shape=(len(customers), len(catalogue)))
    matrix.data[:] = 1.0  # duplicate pairs were summed: a customer bought a product or not
    return matrix, np.asarray(catalogue, dtype=object)


class ProductAffinity:
    """Item-item affinity from co-purchases (module docstring), scikit-learn style.

    Args:
        method: ``cosine``, ``lift`` or ``popularity``.
        neighbours: most similar products kept per product.
        min_pair_customers: ``lift`` only: customers a pair needs in common to count.
        exclude: product ids never recommended (postage, fees); they still count as purchases
            of the customers who bought them.
    """

    def __init__(
        self,
        method: str = "cosine",
        *,
        neighbours: int = 20,
        min_pair_customers: int = 3,
        exclude: Sequence[str] = (),
    ) -> None:
        self.method = method
        self.neighbours = neighbours
        self.min_pair_customers = min_pair_customers
        self.exclude = tuple(exclude)

    @property
    def params(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "neighbours": self.neighbours,
            "min_pair_customers": self.min_pair_customers,
            "exclude": list(self.exclude),
        }

    def fit(self, pairs: pd.DataFrame) -> ProductAffinity:
        """Fit on a frame with ``customer_id`` and ``product_id`` (repeats allowed)."""
        if self.method not in METHODS:
            raise ClvInputError(f"product affinity: unknown method {self.method!r}; choose from {', '.join(METHODS)}")
        if pairs.empty:
            raise ClvInputError("product affinity: no (customer, product) pairs to fit on")
        # The catalogue is sorted: a product's index orders ties by id.
        matrix, catalogue = _binary_matrix(pairs)
        counts = np.asarray(matrix.sum(axis=0)).ravel()
        self.products_ = catalogue.astype(object)
        self.product_customers_ = counts.astype(np.int64)
        self.n_customers_ = int(matrix.shape[0])
        # Popularity rank: most customers first, then product id (the catalogue is sorted by id).
        order = np.lexsort((np.arange(len(catalogue)), -counts))
        rank = np.empty(len(catalogue), dtype=np.int64)
        rank[order] = np.arange(len(catalogue))
        self.popularity_rank_ = rank
        self.recommendable_ = ~np.isin(catalogue.astype(str), np.asarray(self.exclude, dtype=str))
        self.product_index_ = {str(p): i for i, p in enumerate(catalogue)}
        # Recommendable products, most popular first: the fill-in after the similar ones.
        self.popularity_order_ = order[self.recommendable_[order]].astype(np.int32)
        width = 0 if self.method == "popularity" else min(self.neighbours, max(len(catalogue) - 1, 0))
        self.neighbour_index_ = np.full((len(catalogue), width), -1, dtype=np.int32)
        self.neighbour_weight_ = np.zeros((len(catalogue), width), dtype=np.float64)
        if width:
            self._fit_neighbours(matrix, counts, width)
        return self

    def _similarity_rows(self, matrix: Any, counts: np.ndarray, rows: slice) -> np.ndarray:
        """Dense similarity of products ``rows`` to every product (self-similarity zeroed)."""
        block = (matrix[:, rows].T @ matrix).toarray()  # c_ij: customers who bought both
        index = np.arange(rows.start, rows.stop)
        block[np.arange(len(index)), index] = 0.0
        n_i = counts[rows][:, None]
        if self.method == "cosine":
            return block / np.sqrt(n_i * counts[None, :])
        lift = block * self.n_customers_ / (n_i * counts[None, :])
        lift[block < self.min_pair_customers] = 0.0
        return lift

    def _fit_neighbours(self, matrix: Any, counts: np.ndarray, width: int) -> None:
        matrix = matrix.tocsc()
        n = len(counts)
        step = max(1, 4_000_000 // max(n, 1))  # ~32 MB of float64 per block of products
        for start in range(0, n, step):
            rows = slice(start, min(start + step, n))
            sim = self._similarity_rows(matrix, counts, rows)
            sim[:, ~self.recommendable_] = 0.0
            for offset, row in enumerate(sim):
                # Shortlist everything at least as similar as the width-th largest (ties kept),
                # then largest first, ties by the smaller product index (= product id).
                threshold = np.partition(row, n - width)[n - width] if width < n else -np.inf
                short = np.flatnonzero((row >= threshold) & (row > 0))
                top = short[np.lexsort((short, -row[short]))][:width]
                self.neighbour_index_[start + offset, : len(top)] = top
                self.neighbour_weight_[start + offset, : len(top)] = row[top]

    def _check_fitted(self) -> None:
        if not hasattr(self, "products_"):
            raise ClvInputError("product affinity: fit the model before recommending")

    def _indices(self, customer_products: Iterable[str]) -> list[int]:
        """Catalogue indices of the known products among ``customer_products`` (sorted, distinct)."""
        index = self.product_index_
        return sorted({index[p] for p in map(str, customer_products) if p in index})

    def _similarity_matrix(self) -> Any:
        """The stored neighbours as a CSR product × product matrix (built once per process)."""
        cached = self.__dict__.get("_similarity_csr")
        if cached is None:
            from scipy import sparse

            n, width = self.neighbour_index_.shape
            rows = np.repeat(np.arange(n), width)
            cols = self.neighbour_index_.ravel()
            keep = cols >= 0
            cached = sparse.csr_matrix(
                (self.neighbour_weight_.ravel()[keep], (rows[keep], cols[keep])), shape=(n, n)
            )
            cached.sort_indices()
            self.__dict__["_similarity_csr"] = cached
        return cached

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_similarity_csr", None)  # derived: rebuilt on first use, not stored
        return state

    def _recommend_rows(self, baskets: Sequence[list[int]], k: int) -> list[list[str]]:
        """Top ``k`` for each basket (sorted distinct catalogue indices). A basket's score row is
        X_row @ W: scipy adds row by row over the basket's products in index order, so a basket
        gets the same floating-point sums alone or among others."""
        from scipy import sparse

        weights = self._similarity_matrix()
        n = len(self.products_)
        out: list[list[str]] = []
        popular = self.popularity_order_.tolist()
        bought_mask = np.zeros(n, dtype=bool)
        step = 1_000  # baskets per block: bounds the memory of the score block
        for start in range(0, len(baskets), step):
            block = baskets[start : start + step]
            indptr = np.cumsum([0, *(len(b) for b in block)])
            indices = np.fromiter((i for b in block for i in b), dtype=np.int64, count=int(indptr[-1]))
            x = sparse.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(block), n))
            scores = (x @ weights).tocsr()
            scores.sort_indices()
            for row, bought in enumerate(block):
                lo, hi = scores.indptr[row], scores.indptr[row + 1]
                cols, vals = scores.indices[lo:hi], scores.data[lo:hi]
                bought_mask[bought] = True
                keep = (vals > 0) & ~bought_mask[cols]  # excluded products have no similarity
                bought_mask[bought] = False
                cols, vals = cols[keep], vals[keep]
                chosen = cols[np.lexsort((self.popularity_rank_[cols], -vals))][:k].tolist()
                if len(chosen) < k:  # fill with the most popular products not bought nor chosen
                    skip = set(bought) | set(chosen)
                    for i in popular:
                        if len(chosen) == k:
                            break
                        if int(i) not in skip:
                            chosen.append(int(i))
                out.append([str(self.products_[i]) for i in chosen])
        return out

    def recommend(self, customer_products: Iterable[str], k: int) -> list[str]:
        """The top ``k`` products the customer has not bought (module docstring for the order).
        Products unknown to the model are ignored."""
        self._check_fitted()
        return self._recommend_rows([self._indices(customer_products)], k)[0]

    def recommend_many(self, pairs: pd.DataFrame, k: int) -> dict[str, list[str]]:
        """``customer_id -> recommend(their products, k)`` for every customer of ``pairs``
        (columns ``customer_id``, ``product_id``): exactly the per-customer answer."""
        self._check_fitted()
        if pairs.empty:
            return {}
        baskets: dict[str, set[int]] = {}
        index = self.product_index_
        customers_of = pairs["customer_id"].astype(str).to_numpy(dtype=object)
        products_of = pairs["product_id"].astype(str).to_numpy(dtype=object)
        for customer, product in zip(customers_of, products_of, strict=True):
            basket = baskets.setdefault(customer, set())
            if product in index:
                basket.add(index[product])
        customers = sorted(baskets)
        ranked = self._recommend_rows([sorted(baskets[c]) for c in customers], k)
        return dict(zip(customers, ranked, strict=True))


def join_products(products: Sequence[str]) -> str | None:
    """``recommended_products`` text: the ids joined by ``|`` in rank order; None when empty."""
    return SEPARATOR.join(products) if products else None
