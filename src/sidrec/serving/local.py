"""`sidrec recommend --run`: one request answered in this process, exactly as the server answers it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sidrec.errors import ConfigError, DataError
from sidrec.serving.loading import load_served
from sidrec.serving.queries import RequestProblem, answer, build_query
from sidrec.serving.schemas import RecommendRequest


def recommend_local(run: str | Path, body: dict[str, Any], *, device: str = "auto") -> dict[str, Any]:
    """The response body `POST /v1/recommend` would give for `body`, from the run loaded here."""
    try:
        request = RecommendRequest(**body)
    except ValidationError as e:
        first = e.errors()[0]
        raise ConfigError(f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from None
    served = load_served(run, device=device)
    try:
        query, n_allowed = build_query(request, served)
    except RequestProblem as e:
        raise DataError(e.msg) from None
    [ranked] = served.engine.run([query])
    return answer(served, request, query, ranked, n_allowed=n_allowed).model_dump()
