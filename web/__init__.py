"""web/: the dashboard and JSON API served by `wgfpgan serve` — watch jobs, inspect items with a
before/after viewer, try the model on one photo, submit/cancel/retry, Prometheus metrics.

Stack: FastAPI + server-rendered Jinja2 pages + a little vanilla JS (no build step, no npm at run time).
Why: the API is the product (the scheduler's verbs over HTTP, with the OpenAPI description FastAPI
generates from typed endpoints), the pages are thin clients of that same API, and FastAPI runs the
blocking DB/storage/model calls of sync endpoints in a thread pool without us writing async plumbing.
Gradio was rejected: it is built for a single model demo, would add a large dependency with its own
frontend bundle, and does not fit job tables with keyset paging or token auth on every route.

Module map: app.py builds the application (one `WebContext` per app), auth.py the optional token,
progress.py job progress/throughput/ETA, items.py the keyset-paged item listing, images.py the
thumbnail cache, tryout.py the lazily loaded Restorer and upload checks, metrics.py /metrics,
api.py the JSON routes, pages.py the HTML routes, cli.py the `serve` verb.
"""
