"""Running a load test: Locust glue, run artifacts, validity and `voiceload run`.

- :mod:`voiceload.runner.options`   custom Locust command-line options, checked before load
- :mod:`voiceload.runner.plugin`    Locust event listeners owning the Recorder/Aggregator/phases
- :mod:`voiceload.runner.artifacts` ``reports/<run-id>/``: run.json, sessions.csv, summary.json
- :mod:`voiceload.runner.validity`  is the measurement trustworthy? (pure)
- :mod:`voiceload.cli.run`          ``voiceload run``: emulator + Locust + report, one command
"""
