"""Prefect-client glue below the flows and tasks: what every entry point shares.

    run_settings    settings with their Blocks loaded, and the global concurrency limits' names
    answers         the resume form and the one path every review answer takes to a run
    clip_cache      where produce-clip keeps its results: local disk or the shared bucket
    clip_locks      Redis locks with a lease, so that one clip key is made once at a time
    generation_pool how many clips a run makes at once: the generator limit's slots

The flows and tasks import from here, as do the CLI, the review room, the webhook
receiver and the demo; nothing here imports a flow or a task.
"""
