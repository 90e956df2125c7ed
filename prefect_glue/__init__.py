"""Prefect-client glue below the flows and tasks: what every entry point shares.

    run_settings    settings with their Blocks loaded, and the global concurrency limits' names
    answers         the resume form and the one path every review answer takes to a run

The flows and tasks import from here, as do the CLI, the review room, the webhook
receiver and the demo; nothing here imports a flow or a task.
"""
