"""voiceload's Locust users: glue only. Everything they call lives in voiceload.runner.

    locust -f loadtests/locustfile.py                 # web UI (options appear in its form)
    voiceload run --scenario default                  # headless, emulator started for you

Weights below are the default mix; a scenario can change them with Locust's own
``--config-users`` (see loadtests/scenarios/). voiceload's options (``--frame-ms``,
``--fixtures``, ``--target`` ...) are listed by ``locust -f loadtests/locustfile.py --help``.
"""

from __future__ import annotations

import random

from locust import User, between, events, task

from voiceload.runner.plugin import plugin_of, register

register(events)  # voiceload's command-line options and the init listener


class VoiceUser(User):
    """One simulated caller: a session, a short pause, the next session."""

    abstract = True
    user_type = ""  # flux | aura | agent: which session driver runs
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.rng = random.Random()
        plugin_of(self.environment).stagger_start(self.rng)  # spread Locust's spawn batches

    @task
    def session(self) -> None:
        plugin_of(self.environment).run_user_session(self.user_type, self.rng)


class FluxUser(VoiceUser):
    """Streams a recorded fixture to Flux in real time and measures every turn."""

    user_type = "flux"
    weight = 3


class AuraUser(VoiceUser):
    """Asks Aura to speak a reply text and measures first byte, first audio, stalls."""

    user_type = "aura"
    weight = 2


class VoiceAgentUser(VoiceUser):
    """A conversation: Flux hears the caller, Aura answers each turn (voice to voice)."""

    user_type = "agent"
    weight = 1
