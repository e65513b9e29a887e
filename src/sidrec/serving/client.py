"""A small Python client for `sidrec serve`.

    client = RecommendClient("http://127.0.0.1:8000")
    answer = client.recommend(["B0001", "B0002"], k=10, categories=["Skin Care"])
    [a, b] = client.recommend_batch([{"history": ["B0001"]}, {"history": ["B0002"], "k": 5}])
    client.model()                           # what is served

Server errors become one-line `SidrecError`s carrying the server's message (a 422 names the
unknown items or the limit); a server that is not there is named with the command that starts one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from sidrec.errors import DataError, SidrecError


class RecommendClient:
    def __init__(self, url: str = "http://127.0.0.1:8000", *, timeout_s: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s)

    def __enter__(self) -> RecommendClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            r = self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise SidrecError(f"no sidrec server answers at {self.url} ({type(e).__name__}); start one with "
                              "`sidrec serve --run RUN`") from None
        if r.status_code == 200:
            return r.json()
        try:
            detail = r.json().get("detail")
        except ValueError:
            detail = r.text.strip()[:300]
        if isinstance(detail, list):  # validation errors: field location and message
            detail = "; ".join(f"{'.'.join(str(x) for x in d.get('loc', [])[1:])}: {d.get('msg')}"
                               if isinstance(d, dict) else str(d) for d in detail)
        error = DataError if r.status_code == 422 else SidrecError
        raise error(f"{self.url}{path}: {r.status_code} {detail}")

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def model(self) -> dict[str, Any]:
        return self._call("GET", "/v1/model")

    def search(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/items", params={"q": query, "limit": limit})["items"]

    def recommend(self, history: Sequence[str], *, k: int = 10, num_beams: int | None = None,
                  exclude_history: bool = False, include_items: Sequence[str] | None = None,
                  exclude_items: Sequence[str] | None = None, categories: Sequence[str] | None = None,
                  user_id: str | None = None) -> dict[str, Any]:
        """The server's answer for one history (`items`: rank, item_id, title, sid, score)."""
        body: dict[str, Any] = {"history": list(history), "k": k, "exclude_history": exclude_history}
        for name, value in (("num_beams", num_beams), ("include_items", include_items),
                            ("exclude_items", exclude_items), ("categories", categories), ("user_id", user_id)):
            if value is not None:
                body[name] = list(value) if isinstance(value, (list, tuple)) else value
        return self._call("POST", "/v1/recommend", json=body)

    def recommend_batch(self, requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """One answer per request body (the fields of `recommend`), in order."""
        return self._call("POST", "/v1/recommend/batch", json={"requests": list(requests)})["results"]
