"""Each target builds the documented URL, headers and subprotocols (PROTOCOLS.md §1, §2, §6)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest

from voiceload import credentials
from voiceload.credentials import Credentials, Secret, redact
from voiceload.errors import ConfigError
from voiceload.targets import (
    AUTH_FORMS,
    AuthForm,
    ModelParams,
    Service,
    deepgram_aura_model,
    rebase,
    resolve_target,
    ssl_context_for,
)

ACCOUNT = "0123456789abcdef0123456789abcdef"
GATEWAY = "my-ai-gateway"
TOKEN = "cf-test-token-0123456789-abcdefXYZ"
DG_KEY = "dg-test-key-0123456789abcdef0123"

CREDS = Credentials(
    account_id=ACCOUNT, gateway_id=GATEWAY, api_token=Secret(TOKEN),
    deepgram_api_key=Secret(DG_KEY),
)
PARAMS = ModelParams(
    eot_threshold=0.7, eager_eot_threshold=0.4, eot_timeout_ms=3000,
    keyterms=("Cloudflare", "customer service"), aura_model="@cf/deepgram/aura-2-en",
    aura_voice="luna",
)


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    credentials.forget_secrets()
    yield
    credentials.forget_secrets()


def query(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


FLUX_PAIRS = [
    ("encoding", "linear16"), ("sample_rate", "16000"), ("eot_threshold", "0.7"),
    ("eager_eot_threshold", "0.4"), ("eot_timeout_ms", "3000"),
    ("keyterm", "Cloudflare"), ("keyterm", "customer service"),
]


def test_gateway_flux_url_puts_model_and_parameters_in_the_query() -> None:
    target = resolve_target("gateway", credentials=CREDS, params=PARAMS)
    url = target.flux.url
    assert url.startswith(f"wss://gateway.ai.cloudflare.com/v1/{ACCOUNT}/{GATEWAY}/workers-ai?")
    assert query(url) == [("model", "@cf/deepgram/flux"), *FLUX_PAIRS]
    assert "model=@cf/deepgram/flux&" in url  # the documented, unescaped form
    assert "keyterm=customer%20service" in url  # multi-word keyterm as Deepgram documents it
    assert target.is_real


def test_gateway_aura_url_and_voice_parameter() -> None:
    target = resolve_target("gateway", credentials=CREDS, params=PARAMS)
    assert urlsplit(target.aura.url).path == f"/v1/{ACCOUNT}/{GATEWAY}/workers-ai"
    assert query(target.aura.url) == [("model", "@cf/deepgram/aura-2-en"), ("speaker", "luna")]


@pytest.mark.parametrize(
    ("form", "headers", "subprotocols"),
    [
        (AuthForm.AIG_HEADER, [("cf-aig-authorization", TOKEN)], []),
        (AuthForm.AIG_BEARER, [("cf-aig-authorization", f"Bearer {TOKEN}")], []),
        (AuthForm.AIG_SUBPROTOCOL, [], [f"cf-aig-authorization.{TOKEN}"]),
    ],
)
def test_gateway_auth_forms(
    form: AuthForm, headers: list[tuple[str, str]], subprotocols: list[str]
) -> None:
    target = resolve_target("gateway", credentials=CREDS, auth_form=form)
    for endpoint in (target.flux, target.aura):
        assert endpoint.wire_headers() == headers
        assert endpoint.wire_subprotocols() == subprotocols


def test_workers_ai_direct_route_with_bearer() -> None:
    target = resolve_target("workers-ai", credentials=CREDS, params=PARAMS)
    flux = urlsplit(target.flux.url)
    assert (flux.scheme, flux.netloc) == ("wss", "api.cloudflare.com")
    assert flux.path == f"/client/v4/accounts/{ACCOUNT}/ai/run/@cf/deepgram/flux"
    assert query(target.flux.url) == FLUX_PAIRS
    assert urlsplit(target.aura.url).path.endswith("/ai/run/@cf/deepgram/aura-2-en")
    assert target.flux.wire_headers() == [("Authorization", f"Bearer {TOKEN}")]
    assert target.flux.wire_subprotocols() == []


def test_deepgram_direct_routes_with_token_auth_and_deepgram_model_names() -> None:
    params = ModelParams(aura_model="@cf/deepgram/aura-2-en", aura_voice="thalia",
                         aura_encoding="linear16", aura_sample_rate=24000)
    target = resolve_target("deepgram", credentials=CREDS, params=params)
    assert target.flux.url.startswith("wss://api.deepgram.com/v2/listen?")
    assert query(target.flux.url) == [
        ("model", "flux-general-en"), ("encoding", "linear16"), ("sample_rate", "16000"),
    ]
    assert target.aura.url.startswith("wss://api.deepgram.com/v1/speak?")
    assert query(target.aura.url) == [
        ("model", "aura-2-thalia-en"), ("encoding", "linear16"), ("sample_rate", "24000"),
    ]
    assert target.aura.wire_headers() == [("Authorization", f"Token {DG_KEY}")]


def test_deepgram_aura_route_always_asks_for_its_output_format() -> None:
    params = ModelParams(aura_model="@cf/deepgram/aura-2-en", aura_voice="thalia")
    target = resolve_target("deepgram", credentials=CREDS, params=params)
    assert query(target.aura.url) == [
        ("model", "aura-2-thalia-en"), ("encoding", "linear16"), ("sample_rate", "24000"),
    ]
    # the Workers AI routes leave it to the service unless asked (not documented there)
    gateway = resolve_target("gateway", credentials=CREDS, params=params)
    assert [k for k, _ in query(gateway.aura.url)] == ["model", "speaker"]


def test_the_aura_format_is_checked_per_route() -> None:
    with pytest.raises(ConfigError, match=r"--aura-sample-rate 22050 is not accepted on Deepgram"):
        resolve_target("deepgram", credentials=CREDS, params=ModelParams(aura_sample_rate=22050))
    gateway = resolve_target("gateway", credentials=CREDS,
                             params=ModelParams(aura_sample_rate=22050))
    assert ("sample_rate", "22050") in query(gateway.aura.url)  # the Workers AI schema: a number


def test_route_rules_refuse_bad_parameters_before_anything_connects() -> None:
    with pytest.raises(ConfigError, match=r"--eot-threshold 2 is not accepted on Workers AI"):
        resolve_target("gateway", credentials=CREDS, params=ModelParams(eot_threshold=2))
    target = resolve_target("deepgram", credentials=CREDS, params=ModelParams(eot_threshold=1.0))
    assert ("eot_threshold", "1") in query(target.flux.url)


@pytest.mark.parametrize(
    ("model", "voice", "expected"),
    [
        ("@cf/deepgram/aura-1", None, "aura-angus-en"),
        ("@cf/deepgram/aura-1", "luna", "aura-luna-en"),
        ("@cf/deepgram/aura-2-en", None, "aura-2-luna-en"),
        ("@cf/deepgram/aura-2-es", "sirio", "aura-2-sirio-es"),
    ],
)
def test_deepgram_aura_model_names(model: str, voice: str | None, expected: str) -> None:
    assert deepgram_aura_model(ModelParams(aura_model=model, aura_voice=voice)) == expected


@pytest.mark.parametrize(
    ("target", "creds", "missing"),
    [
        ("gateway", Credentials(account_id=ACCOUNT, api_token=Secret(TOKEN)),
         "CLOUDFLARE_GATEWAY_ID"),
        ("gateway", Credentials(), "CLOUDFLARE_ACCOUNT_ID"),
        ("workers-ai", Credentials(account_id=ACCOUNT), "CLOUDFLARE_API_TOKEN"),
        ("deepgram", CREDS.__class__(api_token=Secret(TOKEN)), "DEEPGRAM_API_KEY"),
    ],
)
def test_missing_credentials_name_the_variable(
    target: str, creds: Credentials, missing: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{missing} is not set"):
        resolve_target(target, credentials=creds)


def test_base_url_keeps_each_route_path_and_makes_the_target_local() -> None:
    base = "ws://127.0.0.1:40123"
    for name in ("gateway", "workers-ai", "deepgram"):
        real = resolve_target(name, credentials=CREDS, params=PARAMS)
        local = resolve_target(name, credentials=CREDS, params=PARAMS, base_url=base)
        for service in Service:
            a, b = urlsplit(real.endpoint(service).url), urlsplit(local.endpoint(service).url)
            assert (b.scheme, b.netloc) == ("ws", "127.0.0.1:40123")
            assert (b.path, b.query) == (a.path, a.query)
        assert not local.is_real
        assert local.flux.ssl_context() is None


def test_rebase_with_a_path_prefix() -> None:
    assert rebase("wss://h.example/v1/a?x=1", "ws://127.0.0.1:9/pre/") == (
        "ws://127.0.0.1:9/pre/v1/a?x=1"
    )
    with pytest.raises(ConfigError, match=r"--base-url"):
        rebase("wss://h.example/v1", "http://127.0.0.1:9")


def test_emulator_target_uses_the_emulator_url_and_never_the_real_token() -> None:
    target = resolve_target("emulator", credentials=CREDS, emulator_url="ws://127.0.0.1:8787")
    assert target.flux.url.startswith("ws://127.0.0.1:8787/v1/")
    assert "/workers-ai?model=@cf/deepgram/flux" in target.flux.url
    assert TOKEN not in str(target.flux.wire_headers())
    assert not target.is_real


def test_custom_url_with_extra_headers_treated_as_secrets() -> None:
    url = "wss://app.example.com/demo/api/ai/transcription"
    target = resolve_target(
        url, credentials=Credentials(), headers=["X-App-Key: app-secret-value-1234"]
    )
    assert target.name == "custom"
    assert target.flux.url == url and target.aura.url == url
    assert target.flux.wire_headers() == [("X-App-Key", "app-secret-value-1234")]
    assert target.is_real
    assert "app-secret-value-1234" not in redact("sent app-secret-value-1234")
    with pytest.raises(ConfigError, match="Name: value"):
        resolve_target(url, credentials=Credentials(), headers=["no colon"])


def test_deepgram_subprotocol_form_and_wrong_forms() -> None:
    target = resolve_target("deepgram", credentials=CREDS, auth_form=AuthForm.TOKEN_SUBPROTOCOL)
    assert target.flux.wire_subprotocols() == ["token", DG_KEY]
    assert target.flux.wire_headers() == []
    with pytest.raises(ConfigError, match="does not work with target workers-ai"):
        resolve_target("workers-ai", credentials=CREDS, auth_form=AuthForm.AIG_HEADER)


def test_unknown_target_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown --target 'prod'"):
        resolve_target("prod", credentials=CREDS)


def test_printing_a_target_never_shows_a_credential() -> None:
    for name in ("gateway", "workers-ai", "deepgram"):
        for form in AUTH_FORMS[name]:
            target = resolve_target(name, credentials=CREDS, auth_form=form)
            text = f"{target!r} {target} {target.describe()}"
            assert TOKEN not in text and DG_KEY not in text


def test_describe_drops_userinfo() -> None:
    target = resolve_target("wss://user:pw@app.example.com/ws", credentials=Credentials())
    assert target.describe()["url"] == "wss://app.example.com/ws"


URL_TOKEN = "qs-token-5a6b7c8d9e0f1a2b3c4d"


@pytest.mark.parametrize("name", ["token", "key", "api_key", "access_token", "X-Auth-Token",
                                  "sig", "cf-aig-authorization", "client_secret"])
def test_describe_redacts_credential_query_parameters(name: str) -> None:
    url = f"wss://app.example.com/ws?model=flux&{name}={URL_TOKEN}&keyterm=key%20word"
    described = resolve_target(url, credentials=Credentials()).describe()
    assert described["url"] == (
        f"wss://app.example.com/ws?model=flux&{name}=[REDACTED]&keyterm=key%20word"
    )
    assert URL_TOKEN not in str(described)


def test_describe_redacts_registered_secrets_anywhere_in_the_url() -> None:
    credentials.register_secret(URL_TOKEN)  # e.g. a --header value the user also put in a path
    target = resolve_target(f"wss://app.example.com/{URL_TOKEN}/ws?model=flux",
                            credentials=Credentials())
    assert target.describe()["url"] == "wss://app.example.com/[REDACTED]…3c4d/ws?model=flux"


def test_credentials_in_a_url_are_registered_and_never_printed() -> None:
    encoded = URL_TOKEN.replace("-", "%2D")
    target = resolve_target(
        f"wss://bob:pw-5e6f7a8b9c@app.example.com/ws?token={encoded}",
        credentials=Credentials(), aura_url=f"wss://app.example.com/speak?api_key={URL_TOKEN}",
    )
    # the request line websockets logs at DEBUG, and any repr, come out redacted
    logged = f"GET /ws?token={encoded} GET /speak?api_key={URL_TOKEN} pw-5e6f7a8b9c"
    assert URL_TOKEN not in redact(logged) and encoded not in redact(logged)
    assert "pw-5e6f7a8b9c" not in redact(logged)
    assert URL_TOKEN not in repr(target) and encoded not in repr(target)
    assert "pw-5e6f7a8b9c" not in repr(target)


def test_tls_context_for_wss_verifies_certificates_and_host_names() -> None:
    context = ssl_context_for("wss://gateway.ai.cloudflare.com/v1/a/g/workers-ai")
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    target = resolve_target("gateway", credentials=CREDS)
    kwargs = target.flux.connect_kwargs()
    assert kwargs["ssl"].verify_mode == ssl.CERT_REQUIRED and kwargs["ssl"].check_hostname
    assert ssl_context_for("ws://127.0.0.1:1/") is None
