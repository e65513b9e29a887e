"""`sidrec serve`: any trained run behind one batched REST API, with catalogue filters inside decoding.

    served = load_served("runs/demo/sft")                   # engine + catalogue + identity
    app = create_app(served, ServeConfig(max_batch_size=32))  # FastAPI; `serve(...)` runs it with uvicorn

Layout: `config` (ServeConfig: batching, limits), `schemas` (strict request/response models),
`catalogue` (item ids, titles, categories; history and filter resolution; title search),
`engines` (one `run(queries)` over a generative run's constrained beam search or a classic
model's scores), `loading` (a run folder → engine + catalogue), `batching` (dynamic
micro-batching), `app` (the FastAPI app, metrics, access logs), `client` (a small Python client),
`static/` (the web page at `/`).
"""
