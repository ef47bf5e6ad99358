"""worker/: ties model/, db/ and storage together — the Celery app and task (`wgfpgan worker`), the
embedded local runner (`wgfpgan run`), and the one implementation of "process an item" both share
(worker/process.py)."""
