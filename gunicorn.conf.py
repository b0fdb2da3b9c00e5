"""gunicorn's settings for this project, read from the directory gunicorn starts in (the
image's /app, or the checkout for bench/load.py). Everything else is given on the command
line (Dockerfile, docker-compose.yml)."""


def post_worker_init(worker) -> None:
    """The worker has loaded the application: keep what it loaded out of the garbage
    collector's full passes (evidence_service.wsgi.freeze_what_is_loaded), and let long
    streamed answers report progress to the arbiter (evidence_service.workers)."""
    import gc

    from evidence_service.workers import serving_in
    from evidence_service.wsgi import freeze_what_is_loaded

    serving_in(worker)
    freeze_what_is_loaded()
    if worker is not None:
        worker.log.info("worker %s: %d objects kept out of full garbage collections", worker.pid, gc.get_freeze_count())
