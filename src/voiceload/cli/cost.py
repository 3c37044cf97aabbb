"""``voiceload cost``: what S voice sessions/day cost and need, without running a load test.

Describe one voice session (Flux audio minutes incl. trailing silence, Aura characters and model,
WebSockets opened, session length); the command prints the projection under Workers AI's
published pricing and under the setup guide's table, the verdict on the guide's "$0/month" claim,
and the peak concurrency and connection rate the load implies.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from voiceload import cost


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sessions-per-day", type=float, default=1000.0, metavar="N",
                        help="voice sessions per day (default 1000)")
    parser.add_argument("--flux-minutes", type=float, default=1.0, metavar="M",
                        help="Flux audio minutes streamed per session, trailing silence "
                             "included (default 1.0)")
    parser.add_argument("--aura-chars", type=float, default=300.0, metavar="C",
                        help="Aura input characters per session (default 300)")
    parser.add_argument("--aura-model", default=None, metavar="MODEL",
                        help="Aura model priced: aura-1, aura-2-en, aura-2-es "
                             "(default: the pricing file's default_aura_model)")
    parser.add_argument("--flux-requests", type=float, default=1.0, metavar="K",
                        help="Flux WebSockets per session, for the guide's per-request table "
                             "(default 1)")
    parser.add_argument("--aura-requests", type=float, default=None, metavar="K",
                        help="Aura WebSockets per session (default 1, or 0 with --aura-chars 0)")
    parser.add_argument("--session-s", type=float, default=None, metavar="SECONDS",
                        help="session length for the capacity estimate "
                             "(default: the Flux audio length)")
    parser.add_argument("--busy-hour-factor", type=float, default=None, metavar="F",
                        help="peak rate / mean daily rate (default: the pricing file's)")
    parser.add_argument("--pricing", default=None, metavar="FILE",
                        help="pricing TOML (default: the one shipped with voiceload)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def main(args: argparse.Namespace) -> int:
    pricing = cost.load_pricing(args.pricing)
    model = args.aura_model or pricing.default_aura_model
    session_s = args.session_s if args.session_s is not None else args.flux_minutes * 60.0
    usage = session_usage(args.flux_minutes, args.aura_chars, model, args.flux_requests,
                          args.aura_requests, session_s)
    proj = cost.project(usage, args.sessions_per_day, pricing)
    cap = cost.capacity(usage, args.sessions_per_day, pricing,
                        busy_hour_factor=args.busy_hour_factor)
    if args.json:
        print(json.dumps({"usage": asdict(usage), "projection": asdict(proj),
                          "capacity": asdict(cap)}, indent=2, sort_keys=True))
        return 0
    for line in format_projection(usage, proj, cap, pricing):
        print(line)
    return 0


def session_usage(
    flux_minutes: float, aura_chars: float, aura_model: str, flux_requests: float,
    aura_requests: float | None, session_s: float,
) -> cost.SessionUsage:
    """One voice session as the flags describe it. ``aura_requests`` None means one Aura
    WebSocket when the session speaks (``aura_chars > 0``) and none when it does not, so a
    session without Aura text opens no Aura socket and the guide's table counts no Aura request.
    """
    aura_sockets = aura_requests if aura_requests is not None else float(aura_chars > 0)
    return cost.SessionUsage(
        flux_audio_minutes=flux_minutes,
        aura_chars={aura_model: aura_chars} if aura_chars > 0 else {},
        flux_requests=flux_requests,
        aura_requests=aura_sockets,
        connections=flux_requests + aura_sockets,
        duration_s=session_s,
    )


def format_projection(
    usage: cost.SessionUsage, proj: cost.Projection, cap: cost.Capacity, pricing: cost.Pricing
) -> list[str]:
    """The projection as plain-text lines (what ``voiceload cost`` prints)."""
    chars = ", ".join(f"{c:,.0f} chars {m}" for m, c in usage.aura_chars.items()) or "no Aura"
    pub, guide = pricing.published, pricing.guide
    days = f"{proj.days_per_month:.0f} days"
    covered = (f"{proj.free_sessions_per_day:,}" if proj.free_sessions_per_day >= 0
               else "any number of")
    return [
        f"Per session: {usage.flux_audio_minutes:.2f} Flux audio min, {chars}, "
        f"{usage.connections:g} WebSockets, {usage.duration_s:.0f} s long",
        f"At {proj.sessions_per_day:,.0f} sessions/day:",
        f"  {pub.name}: {proj.neurons_per_day:,.0f} Neurons/day "
        f"({proj.neurons_per_session:,.1f}/session; {proj.free_neurons_per_day:,.0f} free) "
        f"-> ${proj.usd_per_day:,.2f}/day, ${proj.usd_per_month_usage:,.2f}/{days} "
        f"+ ${proj.workers_paid_minimum_usd_per_month:,.2f} Workers Paid minimum "
        f"= ${proj.usd_per_month:,.2f}",
        f"  {guide.name}: {proj.guide_flux_requests_per_day:,.0f} Flux + "
        f"{proj.guide_aura_requests_per_day:,.0f} Aura requests/day "
        f"-> ${proj.guide_usd_per_day:,.2f}/day, ${proj.guide_usd_per_month:,.2f}/{days}",
        f"  Free allocation covers {covered} sessions/day.",
        f"  The guide's claim, at its {proj.claim_sessions_per_day:,.0f} sessions/day: "
        f"{proj.verdict}",
        f"  Workers Free: {proj.free_plan_note}",
        f"Capacity: peak concurrency {cap.formula}; "
        f"{cap.peak_asr_connections_per_minute:.1f} Flux connections/min at peak vs the "
        f"{cap.asr_limit_per_minute:.0f}/min speech-recognition limit.",
        f"Prices from {pricing.path}",
    ]
