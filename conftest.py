"""pytest wiring for this checkout: seedchain's plugin (options, session, the scenario
items) is harness.pytest_session. The installed package registers it as an entry point
too, for scenario files outside this folder; naming it here keeps an environment
installed before that working."""

pytest_plugins = ["harness.pytest_session"]
