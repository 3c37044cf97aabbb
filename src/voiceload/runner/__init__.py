"""Running a load test: Locust glue, run artifacts, validity and `voiceload run`.

- :mod:`voiceload.runner.options`   custom Locust command-line options, checked before load
- :mod:`voiceload.runner.plugin`    Locust event listeners: roles, the run's lifecycle, phases
- :mod:`voiceload.runner.sink`      the session sample sink and the payload a generator hands on
- :mod:`voiceload.runner.collector` the collector: run directory, merges, sessions.csv, run.json
- :mod:`voiceload.runner.distributed` master/worker final-flush handshake, lost workers
- :mod:`voiceload.runner.locust_compat` every use of Locust internals; the supported versions
- :mod:`voiceload.runner.artifacts` ``reports/<run-id>/``: run.json, sessions.csv, summary.json
- :mod:`voiceload.runner.validity`  is the measurement trustworthy? (pure)
- :mod:`voiceload.cli.run`          ``voiceload run``: emulator + Locust + report, one command
"""
