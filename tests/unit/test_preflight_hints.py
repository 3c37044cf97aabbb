"""`voiceload check`'s Unauthorized hint names the token permissions Cloudflare's docs require."""

from __future__ import annotations

from voiceload import preflight
from voiceload.protocol.gateway import api_authentication_error, unauthorized


def test_gateway_unauthorized_names_ai_gateway_run_and_workers_ai_read() -> None:
    diagnosis, detail = preflight.diagnose_upgrade(*unauthorized(), target_name="gateway")
    # AI Gateway Run: authenticated gateway; Workers AI Read: Workers AI models (not "AI
    # Gateway Read", which only reads gateway settings)
    assert "AI Gateway Run" in diagnosis.problem and "AI Gateway Run" in diagnosis.fix
    assert "Workers AI Read" in diagnosis.fix and "AI Gateway Read" not in diagnosis.fix
    assert "cf-aig-authorization" in diagnosis.fix and "2009" in detail


def test_workers_ai_unauthorized_names_workers_ai_read() -> None:
    diagnosis, _ = preflight.diagnose_upgrade(*api_authentication_error(), target_name="workers-ai")
    assert "Workers AI Read permission" in diagnosis.fix and "Bearer" in diagnosis.fix
