"""Which fixture each Locust user streams, and the session driver that streams it.

:class:`SessionFactory` is built once per process from the checked :class:`RunSettings`, the
resolved :class:`~voiceload.targets.Target` and the fixtures manifest. It picks a fixture for
each session (at random, from the user's own ``random.Random``) and returns the driver from
:mod:`voiceload.client`; the Locust users in ``loadtests/locustfile.py`` only call
``factory.flux(sink, rng).run()`` and the like.

Which fixtures each user type draws from:

* ``flux``  — manifest fixtures with at least one turn;
* ``agent`` — manifest fixtures whose every turn has a scripted reply (conversations);
* ``aura``  — the reply texts in ``fixtures/text/``.

``--fixtures a,b`` narrows every pool to those names (a name may be an audio fixture or a text).
An unknown name, an empty pool for a user type that will run, or an audio fixture of such a pool
that no longer matches the manifest (edited, missing, corrupt: :func:`check_fixtures`) is a
:class:`~voiceload.errors.FixtureError` before any load starts.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from voiceload.audio import prepare
from voiceload.client.agent_session import AgentSession
from voiceload.client.aura_session import AuraOptions, AuraSession
from voiceload.client.flux_session import FluxOptions, FluxSession
from voiceload.client.results import SampleSink
from voiceload.errors import FixtureError
from voiceload.fixtures import Fixture, Manifest, ensure_fixture
from voiceload.protocol.aura import SAMPLE_RATE_BY_ENCODING
from voiceload.runner.options import RunSettings
from voiceload.targets import Endpoint, Target

USER_TYPES = ("flux", "aura", "agent")


@dataclass(frozen=True)
class Pools:
    """The fixture names each user type draws from (manifest order)."""

    flux: tuple[Fixture, ...]
    agent: tuple[Fixture, ...]
    aura: tuple[tuple[str, str], ...]  # (text name, text)

    def size(self, user_type: str) -> int:
        return len(getattr(self, user_type))

    def audio_fixtures(self, user_types: Iterable[str]) -> list[Fixture]:
        """Every audio fixture the ``user_types`` can draw, each once (Aura draws texts)."""
        types = set(user_types)
        audio = [*(self.flux if "flux" in types else ()), *(self.agent if "agent" in types else ())]
        return list({f.name: f for f in audio}.values())


def build_pools(manifest: Manifest, wanted: Sequence[str]) -> Pools:
    """The pools for ``--fixtures wanted`` (empty: everything). Raises :class:`FixtureError`
    naming the first unknown fixture."""
    known = set(manifest.names) | set(manifest.texts)
    for name in wanted:
        if name not in known:
            manifest.get(name)  # raises FixtureError listing the known names
    chosen = set(wanted)

    def keep(name: str) -> bool:
        return not chosen or name in chosen

    flux = tuple(f for f in manifest.fixtures if f.turns and keep(f.name))
    agent = tuple(f for f in flux if all(t.reply for t in f.turns))
    aura = tuple((n, t) for n, t in sorted(manifest.texts.items()) if keep(n))
    return Pools(flux=flux, agent=agent, aura=aura)


def check_pools(pools: Pools, user_types: Iterable[str], manifest_path: str) -> None:
    """:class:`FixtureError` when a user type that will run has nothing to stream."""
    what = {
        "flux": "fixture with speech turns",
        "agent": "conversation fixture (every turn with a reply)",
        "aura": "reply text in fixtures/text/",
    }
    for user_type in user_types:
        if not pools.size(user_type):
            raise FixtureError(
                f"no {what[user_type]} for {user_type} users in {manifest_path}"
                " (check --fixtures, or run `make fixtures`)"
            )


def check_fixtures(
    pools: Pools, user_types: Iterable[str], *, sample_rate: int, frame_ms: int
) -> None:
    """Check, before any load, every audio fixture the ``user_types`` that will run can draw.

    Each must match its manifest entry (:func:`voiceload.fixtures.ensure_fixture`: the file
    exists, is audio, has the manifest's sha256, rate, channels and duration) and decode into
    frames (:func:`voiceload.audio.prepare`, whose per-process cache the sessions then reuse, so
    no session pays for decoding). Raises :class:`FixtureError` with one line naming the first
    bad fixture. Aura's texts need no check: they are read whole when the manifest loads.
    """
    for fixture in pools.audio_fixtures(user_types):
        ensure_fixture(fixture)
        try:
            prepare(fixture.path, sample_rate=sample_rate, frame_ms=frame_ms)
        except FixtureError as exc:
            raise FixtureError(f"fixture {fixture.name!r}: {exc}") from None


def _endpoint_args(endpoint: Endpoint) -> tuple[str, dict[str, str], list[str]]:
    return endpoint.url, dict(endpoint.wire_headers()), endpoint.wire_subprotocols()


class SessionFactory:
    """Builds one session driver per call; every call picks a fixture from the user's ``rng``.

    Construction checks the audio fixtures of ``user_types`` (:func:`check_fixtures`), so a
    bad fixture is a :class:`FixtureError` before any user starts, never a failed session.
    Each fixture's frames are looked up once per factory and then reused by every session, so
    starting a session costs no ``stat``/``realpath`` of its file (~40 µs each; a worker starts
    ~50 sessions/s at 350 users of ~3 s fixtures). The frames are those checked at start: a
    file edited during the run does not change what later sessions send.
    """

    def __init__(
        self,
        settings: RunSettings,
        target: Target,
        pools: Pools,
        user_types: Iterable[str] = USER_TYPES,
    ) -> None:
        check_fixtures(pools, user_types, sample_rate=settings.sample_rate,
                       frame_ms=settings.frame_ms)  # fmt: skip
        self.settings = settings
        self.target = target
        self.pools = pools
        self.flux_options = FluxOptions(
            eager=settings.eager_eot_threshold is not None,
            eot_timeout_ms=settings.eot_timeout_ms or FluxOptions.eot_timeout_ms,
        )
        # the format the Aura URL asks for (targets.aura_params sends the encoding's rate);
        # with nothing asked, Aura's default, and the client checks what arrives either way
        encoding = settings.aura_encoding or "linear16"
        self.aura_options = AuraOptions(
            sample_rate_hz=SAMPLE_RATE_BY_ENCODING[encoding], encoding=encoding
        )
        self._prepared: dict[str, tuple[bytes, ...]] = {}

    def _frames(self, fixture: Fixture) -> tuple[bytes, ...]:
        frames = self._prepared.get(fixture.name)
        if frames is None:
            rate_hz, frame_ms = self.settings.sample_rate, self.settings.frame_ms
            frames = prepare(fixture.path, sample_rate=rate_hz, frame_ms=frame_ms).frames
            self._prepared[fixture.name] = frames
        return frames

    def flux(self, sink: SampleSink, rng: random.Random) -> FluxSession:
        fixture = rng.choice(self.pools.flux)
        url, headers, subprotocols = _endpoint_args(self.target.flux)
        return FluxSession(
            url, headers, subprotocols, self._frames(fixture), fixture.turns,
            self.settings.frame_ms, sink, rng, fixture=fixture.name,
            model=self.settings.flux_model, options=self.flux_options,
        )  # fmt: skip

    def aura(self, sink: SampleSink, rng: random.Random) -> AuraSession:
        name, text = rng.choice(self.pools.aura)
        url, headers, subprotocols = _endpoint_args(self.target.aura)
        return AuraSession(
            url, headers, subprotocols, [text], sink, fixture=name,
            model=self.settings.aura_model, options=self.aura_options,
        )

    def agent(self, sink: SampleSink, rng: random.Random) -> AgentSession:
        fixture = rng.choice(self.pools.agent)
        flux_url, flux_headers, flux_subprotocols = _endpoint_args(self.target.flux)
        aura_url, aura_headers, aura_subprotocols = _endpoint_args(self.target.aura)
        return AgentSession(
            flux_url, flux_headers, flux_subprotocols, aura_url, aura_headers, aura_subprotocols,
            self._frames(fixture), fixture.turns, self.settings.frame_ms, sink, rng,
            fixture=fixture.name, flux_model=self.settings.flux_model,
            aura_model=self.settings.aura_model, think_time_ms=self.settings.think_time_ms,
            flux_options=self.flux_options, aura_options=self.aura_options,
        )  # fmt: skip
