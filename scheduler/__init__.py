"""scheduler/: the CLI verbs that talk to the status DB and the broker — submit, jobs, status, watch,
cancel, retry, reconcile (and `db upgrade|downgrade`). Never imports torch, model/ or worker/."""
