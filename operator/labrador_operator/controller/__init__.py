"""The controller runtime Labrador built on top of kopf — the parts where kopf's own mechanisms did not hold at
1,000–5,000 jobs (measured in docs/operator-scale.md):

- ``cache``: small records filled by one paginated LIST per kind and kept current by watch events (not kopf indexes);
- ``workqueue``: controller-runtime's work queue (one reconcile per key at a time, bursts coalesced, backoff retries
  in one delay heap) instead of reconciling inside kopf's per-object workers;
- ``client``: the API calls (raw responses, pages, 409/403/404 handling);
- ``runtime``: one object per process owning the cache, client, queue and the status overlay, carrying out Plans;
- ``sampler``: one thread for progress and Taxonomy refresh windows instead of a kopf timer per object;
- ``memory``: glibc's malloc_trim after bursts; ``progress``: scraping and parsing the workloads' metrics;
- ``config``: the process's one typed configuration; ``kopf_compat``: every private kopf import;
- ``finetune``, ``sdg``, ``taxonomy``: each kind's glue between the cache, its decisions (reconcile/) and the runtime.

The kopf registrations that feed it live in ``labrador_operator.handlers``; nothing here imports them."""
