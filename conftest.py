# SPDX-License-Identifier: GPL-2.0-only
"""pytest wiring for this checkout: seedchain's plugin (options, session, the scenario
items) is harness.pytest_session. The package registers it nowhere else (it would join
every pytest run in the environment); outside this checkout it is asked for with
`pytest -p harness.pytest_session PATH`."""

pytest_plugins = ["harness.pytest_session"]
