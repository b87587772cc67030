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


def _binary_matrix(customers: np.ndarray, products: np.ndarray, catalogue: np.ndarray) -> Any:
    """CSR customer × product 0/1 matrix (rows: distinct customers in sorted order)."""
    from scipy import sparse

    rows, row_index = np.unique(customers, return_inverse=True)
    cols = np.searchsorted(catalogue, products)
    data = np.ones(len(cols), dtype=np.float64)
    matrix = sparse.csr_matrix((data, (row_index, cols)), shape=(len(rows), len(catalogue)))
    matrix.data[:] = 1.0  # duplicate pairs were summed: a customer bought a product or not
    return matrix


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
        neighbours: int = 100,
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
        customers = pairs["customer_id"].astype(str).to_numpy()
        products = pairs["product_id"].astype(str).to_numpy()
        catalogue = np.unique(products)  # sorted: a product's index orders ties by id
        matrix = _binary_matrix(customers, products, catalogue)
        counts = np.asarray(matrix.sum(axis=0)).ravel()
        self.products_ = catalogue.astype(object)
        self.product_customers_ = counts.astype(np.int64)
        self.n_customers_ = int(matrix.shape[0])
        # Popularity rank: most customers first, then product id (the catalogue is sorted by id).
        order = np.lexsort((np.arange(len(catalogue)), -counts))
        rank = np.empty(len(catalogue), dtype=np.int64)
        rank[order] = np.arange(len(catalogue))
        self.popularity_rank_ = rank
        self.recommendable_ = ~np.isin(catalogue, np.asarray(self.exclude, dtype=str))
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
        ids = np.arange(n)
        for start in range(0, n, step):
            rows = slice(start, min(start + step, n))
            sim = self._similarity_rows(matrix, counts, rows)
            sim[:, ~self.recommendable_] = 0.0
            for offset, row in enumerate(sim):
                # Largest similarity first, ties by the smaller product index (= product id).
                top = np.lexsort((ids, -row))[:width]
                top = top[row[top] > 0]
                self.neighbour_index_[start + offset, : len(top)] = top
                self.neighbour_weight_[start + offset, : len(top)] = row[top]

    def _check_fitted(self) -> None:
        if not hasattr(self, "products_"):
            raise ClvInputError("product affinity: fit the model before recommending")

    def _indices(self, customer_products: Iterable[str]) -> list[int]:
        """Catalogue indices of the known products among ``customer_products`` (sorted, distinct)."""
        index = self.product_index_
        return sorted({index[p] for p in map(str, customer_products) if p in index})

    def scores(self, bought: Sequence[int]) -> np.ndarray:
        """Score of every catalogue product for a customer who bought the products at indices
        ``bought`` (sorted): the sum of their stored similarities, added in that fixed order."""
        total = np.zeros(len(self.products_), dtype=np.float64)
        for i in bought:
            index = self.neighbour_index_[i]
            keep = index >= 0
            total[index[keep]] += self.neighbour_weight_[i][keep]  # distinct within a row
        return total

    def recommend(self, customer_products: Iterable[str], k: int) -> list[str]:
        """The top ``k`` products the customer has not bought (module docstring for the order).
        Products unknown to the model are ignored."""
        self._check_fitted()
        bought = self._indices(customer_products)
        score = self.scores(bought)
        score[bought] = 0.0
        scored = np.flatnonzero(score > 0)  # excluded products have no stored similarity
        chosen = scored[np.lexsort((self.popularity_rank_[scored], -score[scored]))][:k].tolist()
        if len(chosen) < k:  # fill with the most popular products not bought nor chosen
            skip = set(bought) | set(chosen)
            for i in self.popularity_order_:
                if len(chosen) == k:
                    break
                if int(i) not in skip:
                    chosen.append(int(i))
        return [str(self.products_[i]) for i in chosen]

    def recommend_many(self, pairs: pd.DataFrame, k: int) -> dict[str, list[str]]:
        """``customer_id -> recommend(their products, k)`` for every customer of ``pairs``
        (columns ``customer_id``, ``product_id``): exactly the per-customer answer."""
        self._check_fitted()
        out: dict[str, list[str]] = {}
        if pairs.empty:
            return out
        frame = pairs[["customer_id", "product_id"]].astype(str).sort_values(["customer_id", "product_id"])
        for customer, group in frame.groupby("customer_id", sort=True):
            out[str(customer)] = self.recommend(group["product_id"].tolist(), k)
        return out


def join_products(products: Sequence[str]) -> str | None:
    """``recommended_products`` text: the ids joined by ``|`` in rank order; None when empty."""
    return SEPARATOR.join(products) if products else None
