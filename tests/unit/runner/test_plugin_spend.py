"""The spend gate counts users as Locust will dispatch them: fixed-count classes first."""

from __future__ import annotations

from voiceload.runner.plugin import user_mix
from voiceload.spend import split_users


class FluxLike:
    user_type = "flux"
    weight = 3
    fixed_count = 0


class AuraLike:
    user_type = "aura"
    weight = 1
    fixed_count = 0


class NotOurs:  # a user class of the user's own, without a voiceload user type
    weight = 5


def test_weighted_classes_share_by_weight() -> None:
    weights, fixed = user_mix([FluxLike, AuraLike, NotOurs])
    assert weights == {"flux": 3.0, "aura": 1.0}
    assert fixed == {}


def test_a_fixed_count_class_is_counted_exactly_and_not_by_weight() -> None:
    # --config-users '{"user_class_name": "FluxLike", "fixed_count": 8, "weight": 0}'
    pinned = type("PinnedFlux", (FluxLike,), {"weight": 0, "fixed_count": 8})
    weights, fixed = user_mix([pinned, AuraLike])
    assert fixed == {"flux": 8}
    assert weights == {"aura": 1.0}
    # 10 users: Locust runs 8 Flux (fixed) and the other 2 by weight, all Aura
    assert split_users(10, weights, fixed) == (8, 2)
