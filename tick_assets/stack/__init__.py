"""Running Dagster locally: webserver + daemon over GraphQL, the demo, ranged runs from the shell, the soak.

The top layer: it drives the code location (`tick_assets.definitions`) from outside, as a user's shell,
browser or script would. Nothing below it imports it.
"""
