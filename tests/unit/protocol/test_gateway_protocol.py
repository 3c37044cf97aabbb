"""Routes, auth forms, error bodies and their classification (PROTOCOLS.md §1, §2.1, §6)."""

from __future__ import annotations

import json

import pytest

from voiceload.errors import ConfigError, RemoteProtocolError
from voiceload.protocol.gateway import (
    ALLOCATION_EXHAUSTED_MESSAGE,
    AURA_1_MODEL,
    AURA_2_ES_MODEL,
    DEEPGRAM_BAD_AUDIO,
    DEEPGRAM_ERROR_FIELDS,
    DEEPGRAM_IDLE_TIMEOUT,
    FLUX_MODEL,
    AuthForm,
    FailureCategory,
    Route,
    RouteError,
    RouteForm,
    Service,
    UpgradeFailure,
    allocation_exhausted,
    api_authentication_error,
    bad_parameter,
    classify_upgrade_failure,
    client_auth,
    deepgram_bad_request,
    deepgram_headers,
    deepgram_service,
    deepgram_unauthorized,
    deepgram_unknown_model,
    deepgram_url,
    flux_param_problem,
    gateway_not_found,
    gateway_url,
    out_of_capacity,
    parse_route,
    rate_limited,
    route_not_found,
    server_extract_token,
    server_subprotocol,
    unauthorized,
    unknown_model,
    workers_ai_url,
)

FLUX_PARAMS = [("encoding", "linear16"), ("sample_rate", "16000"), ("eot_threshold", "0.7")]

# ---- routes ------------------------------------------------------------------------------


def test_gateway_url_matches_the_documented_form() -> None:
    url = gateway_url("wss://gateway.ai.cloudflare.com/", "acc", "gw", FLUX_MODEL, FLUX_PARAMS)
    assert url == (
        "wss://gateway.ai.cloudflare.com/v1/acc/gw/workers-ai?model=@cf/deepgram/flux"
        "&encoding=linear16&sample_rate=16000&eot_threshold=0.7"
    )


def test_workers_ai_and_deepgram_urls() -> None:
    assert (
        workers_ai_url("wss://api.cloudflare.com", "acc", AURA_1_MODEL)
        == "wss://api.cloudflare.com/client/v4/accounts/acc/ai/run/@cf/deepgram/aura-1"
    )
    assert (
        deepgram_url("wss://api.deepgram.com", Service.FLUX, "flux-general-en", FLUX_PARAMS[:2])
        == "wss://api.deepgram.com/v2/listen?model=flux-general-en&encoding=linear16"
        "&sample_rate=16000"
    )
    assert (
        deepgram_url("ws://127.0.0.1:1", Service.AURA, "aura-2-thalia-en")
        == "ws://127.0.0.1:1/v1/speak?model=aura-2-thalia-en"
    )


def test_gateway_route_round_trip_keeps_repeated_keyterms() -> None:
    params = [*FLUX_PARAMS, ("keyterm", "cancel"), ("keyterm", "customer service")]
    url = gateway_url("ws://127.0.0.1:8787", "acc", "gw", FLUX_MODEL, params)
    assert "keyterm=customer%20service" in url
    route = parse_route(url)
    assert route == Route(
        form=RouteForm.GATEWAY,
        service=Service.FLUX,
        model=FLUX_MODEL,
        account_id="acc",
        gateway_id="gw",
        params=tuple(params),
    )
    assert route.param_values("keyterm") == ["cancel", "customer service"]
    assert route.param("sample_rate") == "16000"
    assert route.param("tag") is None


@pytest.mark.parametrize(
    ("target", "form", "service", "model", "account", "gateway"),
    [
        (
            "/v1/a1/g1/workers-ai?model=@cf/deepgram/aura-2-es",
            RouteForm.GATEWAY,
            Service.AURA,
            AURA_2_ES_MODEL,
            "a1",
            "g1",
        ),
        (
            "/v1/a1/g1/workers-ai/?model=%40cf%2Fdeepgram%2Fflux&encoding=linear16",
            RouteForm.GATEWAY,
            Service.FLUX,
            FLUX_MODEL,
            "a1",
            "g1",
        ),
        (
            "/client/v4/accounts/a1/ai/run/@cf/deepgram/flux?encoding=linear16",
            RouteForm.WORKERS_AI,
            Service.FLUX,
            FLUX_MODEL,
            "a1",
            None,
        ),
        (
            "/client/v4/accounts/a1/ai/run/@cf/deepgram/aura-1",
            RouteForm.WORKERS_AI,
            Service.AURA,
            AURA_1_MODEL,
            "a1",
            None,
        ),
        (
            "/v2/listen?model=flux-general-en",
            RouteForm.DEEPGRAM,
            Service.FLUX,
            "flux-general-en",
            None,
            None,
        ),
        (
            "/v1/speak?model=aura-2-thalia-en",
            RouteForm.DEEPGRAM,
            Service.AURA,
            "aura-2-thalia-en",
            None,
            None,
        ),
        ("/v1/speak", RouteForm.DEEPGRAM, Service.AURA, "aura-asteria-en", None, None),
    ],
)
def test_parse_route_forms(
    target: str,
    form: RouteForm,
    service: Service,
    model: str,
    account: str | None,
    gateway: str | None,
) -> None:
    route = parse_route(target)
    assert (route.form, route.service, route.model, route.account_id, route.gateway_id) == (
        form,
        service,
        model,
        account,
        gateway,
    )


def test_direct_route_model_comes_from_the_path_only() -> None:
    route = parse_route(
        "/client/v4/accounts/a/ai/run/@cf/deepgram/flux?encoding=linear16&model=@cf/x/y"
    )
    assert (route.model, route.service) == (FLUX_MODEL, Service.FLUX)
    assert route.params == (("encoding", "linear16"),)


@pytest.mark.parametrize(
    "target",
    [
        "/v1/a/g/workers-ai?model=@cf/x/y",
        "/v1/a/g/workers-ai?model=@cf/deepgram/nova-3",
        "/client/v4/accounts/a/ai/run/@cf/deepgram/aura-9",
        "/v2/listen?model=nova-3",
        "/v1/speak?model=flux-general-en",
    ],
)
def test_unknown_model_is_a_route_without_service(target: str) -> None:
    route = parse_route(target)
    assert route.service is None
    assert route.model


@pytest.mark.parametrize(
    ("target", "status", "error"),
    [
        ("/v1/a/g/openai?model=@cf/deepgram/flux", 404, "no route for path '/v1/a/g/openai'"),
        ("/healthz", 404, "no route for path '/healthz'"),
        ("/v1/listen?model=flux-general-en", 404, "no route for path '/v1/listen'"),
        ("/v1/a/g/workers-ai?encoding=linear16", 400, "lacks the 'model' query parameter"),
        ("/v2/listen?encoding=linear16", 400, "/v2/listen lacks the 'model' query parameter"),
    ],
)
def test_parse_route_errors(target: str, status: int, error: str) -> None:
    with pytest.raises(RouteError, match=error) as info:
        parse_route(target)
    assert isinstance(info.value, RemoteProtocolError)
    assert info.value.status == status
    answer_status, body = route_not_found(info.value)
    assert answer_status == status
    assert json.loads(body) == {
        "errors": [{"message": str(info.value)}],
        "result": {},
        "success": False,
    }


def test_deepgram_service_names() -> None:
    assert deepgram_service("flux-general-en") is Service.FLUX
    assert deepgram_service("flux-general-multi") is Service.FLUX
    assert deepgram_service("aura-2-thalia-en") is Service.AURA
    assert deepgram_service("aura-asteria-en") is Service.AURA
    assert deepgram_service("nova-3") is None


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        (FLUX_PARAMS, None),
        (
            [("encoding", "linear16"), ("sample_rate", "8000"), ("eager_eot_threshold", "0.3")],
            None,
        ),
        (
            [("sample_rate", "16000")],
            "missing required parameter 'encoding' (Workers AI Flux takes linear16)",
        ),
        (
            [("encoding", "mulaw"), ("sample_rate", "8000")],
            "invalid value for 'encoding': 'mulaw', expected 'linear16'",
        ),
        ([("encoding", "linear16")], "missing required parameter 'sample_rate'"),
        (
            [("encoding", "linear16"), ("sample_rate", "16k")],
            "invalid value for 'sample_rate': '16k', expected one of 8000, 16000, 24000, 44100,"
            " 48000",
        ),
        (
            [*FLUX_PARAMS[:2], ("eot_threshold", "0.95")],
            "invalid value for 'eot_threshold': '0.95', expected 0.5 .. 0.9",
        ),
        (
            [*FLUX_PARAMS[:2], ("eager_eot_threshold", "x")],
            "invalid value for 'eager_eot_threshold': 'x', expected 0.3 .. 0.9",
        ),
        (
            [*FLUX_PARAMS[:2], ("eot_timeout_ms", "5s")],
            "invalid value for 'eot_timeout_ms': '5s', expected an integer 500 .. 60000",
        ),
    ],
)
def test_flux_param_problem(params: list[tuple[str, str]], problem: str | None) -> None:
    assert flux_param_problem(params) == problem


# ---- auth --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "headers", "subprotocols"),
    [
        (AuthForm.AIG_HEADER, [("cf-aig-authorization", "tok123")], []),
        (AuthForm.AIG_BEARER, [("cf-aig-authorization", "Bearer tok123")], []),
        (AuthForm.AIG_SUBPROTOCOL, [], ["cf-aig-authorization.tok123"]),
        (AuthForm.BEARER, [("Authorization", "Bearer tok123")], []),
        (AuthForm.TOKEN, [("Authorization", "Token tok123")], []),
        (AuthForm.TOKEN_SUBPROTOCOL, [], ["token", "tok123"]),
    ],
)
def test_client_auth_and_server_extract_agree(
    form: AuthForm, headers: list[tuple[str, str]], subprotocols: list[str]
) -> None:
    assert client_auth(form, "tok123") == (headers, subprotocols)
    assert server_extract_token(dict(headers), subprotocols) == ("tok123", form)


def test_header_names_are_case_insensitive_and_schemes_too() -> None:
    assert server_extract_token({"CF-AIG-Authorization": "bearer  abc "}, []) == (
        "abc",
        AuthForm.AIG_BEARER,
    )
    assert server_extract_token({"authorization": "TOKEN k"}, []) == ("k", AuthForm.TOKEN)


@pytest.mark.parametrize(
    ("headers", "subprotocols"),
    [
        ({}, []),
        ({"cf-aig-authorization": ""}, []),
        ({"cf-aig-authorization": "Bearer "}, []),
        ({"Authorization": "Basic dXNlcg=="}, []),
        ({}, ["token"]),
        ({}, ["chat"]),
    ],
)
def test_no_token(headers: dict[str, str], subprotocols: list[str]) -> None:
    assert server_extract_token(headers, subprotocols) == (None, None)


def test_gateway_header_wins_over_other_forms() -> None:
    got = server_extract_token(
        {"Authorization": "Bearer direct", "cf-aig-authorization": "gw"},
        ["cf-aig-authorization.sub"],
    )
    assert got == ("gw", AuthForm.AIG_HEADER)


def test_server_echoes_the_auth_subprotocol() -> None:
    offered = ["chat", "cf-aig-authorization.tok"]
    assert server_subprotocol(AuthForm.AIG_SUBPROTOCOL, offered) == "cf-aig-authorization.tok"
    assert server_subprotocol(AuthForm.TOKEN_SUBPROTOCOL, ["token", "k"]) == "token"
    assert server_subprotocol(AuthForm.AIG_HEADER, offered) is None
    assert server_subprotocol(None, []) is None


def test_client_auth_refuses_unusable_tokens() -> None:
    with pytest.raises(ConfigError, match="needs a non-empty token"):
        client_auth(AuthForm.AIG_HEADER, "")
    with pytest.raises(ConfigError, match="use a header form instead"):
        client_auth(AuthForm.AIG_SUBPROTOCOL, "has space")
    assert client_auth(AuthForm.AIG_HEADER, "has space") == (
        [("cf-aig-authorization", "has space")],
        [],
    )


# ---- error bodies and their classification ---------------------------------------------


def test_unauthorized_body() -> None:
    status, body = unauthorized()
    assert status == 401
    assert body == (
        b'{"success":false,"result":[],"messages":[],"error":[{"code":2009,"message":"Unauthorized"}],'
        b'"name":"AiGatewayError","httpCode":401,"internalCode":2009,"message":"Unauthorized"}'
    )


def test_gateway_not_found_body() -> None:
    assert gateway_not_found() == (
        400,
        b'{"success":false,"result":[],"messages":[],"error":[{"code":2001,"message":'
        b'"Please configure AI Gateway in the Cloudflare dashboard"}],"name":"AiGatewayError",'
        b'"httpCode":400,"internalCode":2001}',
    )


def test_unknown_model_body() -> None:
    assert unknown_model("@cf/x/y") == (
        400,
        b'{"success":false,"errors":[{"code":5007,"message":"No such model @cf/x/y or task"}],'
        b'"result":null}',
    )


def test_allocation_exhausted_body_is_the_capture_byte_for_byte() -> None:
    # PROTOCOLS.md §1.5, measured 2026-09-29
    assert allocation_exhausted() == (
        429,
        b'{"code":4006,"message":"AiError: you have used up your daily free allocation of '
        b"10,000 neurons, please upgrade to Cloudflare's Workers Paid plan if you would like "
        b'to continue usage."}',
    )


def test_other_bodies() -> None:
    assert api_authentication_error() == (
        401,
        b'{"success":false,"errors":[{"code":10000,"message":"Authentication error"}]}',
    )
    assert out_of_capacity()[0] == 429
    assert rate_limited()[0] == 429
    assert bad_parameter("invalid value for 'encoding'") == (
        400,
        b'{"errors":[{"message":"invalid value for \'encoding\'"}],"result":{},"success":false}',
    )


@pytest.mark.parametrize(
    ("answer", "category", "code"),
    [
        (unauthorized(), FailureCategory.UNAUTHORIZED, 2009),
        (api_authentication_error(), FailureCategory.UNAUTHORIZED, 10000),
        (gateway_not_found(), FailureCategory.GATEWAY_NOT_FOUND, 2001),
        (unknown_model("@cf/x/y"), FailureCategory.UNKNOWN_MODEL, 5007),
        (allocation_exhausted(), FailureCategory.ALLOCATION_EXHAUSTED, 4006),
        (out_of_capacity(), FailureCategory.OUT_OF_CAPACITY, 3040),
        (rate_limited(), FailureCategory.RATE_LIMITED, None),
        (bad_parameter("invalid value for 'encoding'"), FailureCategory.BAD_REQUEST, None),
        (deepgram_unauthorized("r"), FailureCategory.UNAUTHORIZED, None),
        (deepgram_bad_request("invalid value", "r"), FailureCategory.BAD_REQUEST, None),
        (deepgram_unknown_model("nova-9", "r"), FailureCategory.BAD_REQUEST, None),
    ],
)
def test_every_body_classifies_back(
    answer: tuple[int, bytes], category: FailureCategory, code: int | None
) -> None:
    failure = classify_upgrade_failure(*answer)
    assert (failure.category, failure.status, failure.code) == (category, answer[0], code)


def test_deepgram_bodies_have_the_documented_shape() -> None:
    for status, body in (
        deepgram_unauthorized("req-1"),
        deepgram_bad_request("invalid value for 'encoding'", "req-1"),
        deepgram_unknown_model("nova-9", "req-1"),
    ):
        obj = json.loads(body)
        assert tuple(obj) == DEEPGRAM_ERROR_FIELDS and obj["request_id"] == "req-1"
        assert status in (400, 401) and obj["err_msg"]
    assert json.loads(deepgram_unauthorized("r")[1])["err_code"] == "INVALID_AUTH"
    assert json.loads(deepgram_bad_request("m", "r")[1])["err_code"] == "Bad Request"
    assert classify_upgrade_failure(*deepgram_bad_request("bad rate", "r")).message == "bad rate"


def test_deepgram_headers_name_the_request_and_the_error() -> None:
    assert deepgram_headers("req-1") == [("dg-request-id", "req-1")]
    _, body = deepgram_bad_request("invalid  value\nfor x", "req-1")
    assert deepgram_headers("req-1", body) == [
        ("dg-request-id", "req-1"), ("dg-error", "invalid value for x")
    ]


def test_classification_messages() -> None:
    assert classify_upgrade_failure(*unknown_model("@cf/x/y")).message == (
        "No such model @cf/x/y or task"
    )
    assert classify_upgrade_failure(*gateway_not_found()).message == (
        "Please configure AI Gateway in the Cloudflare dashboard"
    )


def test_4006_inside_the_workers_ai_envelope_classifies_too() -> None:
    error = {"code": 4006, "message": ALLOCATION_EXHAUSTED_MESSAGE}
    envelope = {"success": False, "errors": [error], "result": None}
    failure = classify_upgrade_failure(429, json.dumps(envelope).encode())
    assert failure == UpgradeFailure(
        FailureCategory.ALLOCATION_EXHAUSTED, 429, 4006, ALLOCATION_EXHAUSTED_MESSAGE
    )


@pytest.mark.parametrize(
    ("status", "body", "category", "message"),
    [
        (401, b"", FailureCategory.UNAUTHORIZED, "HTTP 401"),
        (403, b"Forbidden\n", FailureCategory.UNAUTHORIZED, "Forbidden"),
        (429, b"", FailureCategory.RATE_LIMITED, "HTTP 429"),
        (
            400,
            b'{"err_code":"Bad Request","err_msg":"Bad  request:\\n encoding"}',
            FailureCategory.BAD_REQUEST,
            "Bad request: encoding",
        ),
        (404, b"<html>nope</html>", FailureCategory.HANDSHAKE_REFUSED, "<html>nope</html>"),
        (503, b"[]", FailureCategory.HANDSHAKE_REFUSED, "HTTP 503"),
        (500, b"\xff\xfe", FailureCategory.HANDSHAKE_REFUSED, "\ufffd\ufffd"),
    ],
)
def test_unknown_shapes_fall_back_to_status(
    status: int, body: bytes, category: FailureCategory, message: str
) -> None:
    failure = classify_upgrade_failure(status, body)
    assert (failure.category, failure.code, failure.message) == (category, None, message)


def test_describe_is_one_actionable_line() -> None:
    text = classify_upgrade_failure(*unauthorized()).describe()
    assert text.startswith("HTTP 401 (unauthorized, code 2009): Unauthorized; check the token")
    assert "\n" not in text


def test_deepgram_close_codes() -> None:
    """Deepgram's documented close frames (PROTOCOLS.md §3.7): idle 10 s, undecodable audio."""
    assert (DEEPGRAM_IDLE_TIMEOUT.code, DEEPGRAM_IDLE_TIMEOUT.reason) == (1011, "NET-0001")
    assert (DEEPGRAM_BAD_AUDIO.code, DEEPGRAM_BAD_AUDIO.reason) == (1008, "DATA-0000")
