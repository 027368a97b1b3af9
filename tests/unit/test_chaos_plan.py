"""Chaos mode's settings and plan: specs, determinism for a seed, shares, the outage window."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from imbot.sim.chaos import PRESETS, Chaos
from imbot.sim.chaos_plan import ChaosControl, ChaosPlan

SEND = "POST /api/v1/imessage/messages @echo>+15555550100"
OTHER = "POST /api/v1/imessage/messages @echo>+15555550101"
DRAWS = 20_000


def test_parse_reads_presets_pairs_percentages_and_the_webhooks_shorthand() -> None:
    chaos = Chaos.parse("bad-day, seed=7, api=20%, 429=2, 502=0, late_delay=0.5s, webhooks=0.3")
    assert chaos.seed == 7
    assert chaos.api_errors == pytest.approx(0.2)
    assert chaos.error_weights == (2.0, 0.0, 1.0)
    assert chaos.late_delay == 0.5
    assert chaos.duplicate_webhooks == chaos.late_webhooks == pytest.approx(0.1)
    assert chaos.failed_first_delivery == pytest.approx(0.1)
    # What the preset set and the pairs did not override stays.
    assert chaos.slow == PRESETS["bad-day"].slow
    assert chaos.retry_after == PRESETS["bad-day"].retry_after
    assert Chaos.parse("mild") == PRESETS["mild"]
    assert Chaos.parse("api_errors=0.1,failed-first=0.05") == Chaos(
        api_errors=0.1, failed_first_delivery=0.05
    )


def test_spec_reads_back_as_the_same_settings() -> None:
    for chaos in (
        Chaos(seed=3, api_errors=0.1, slow=0.02, slow_delay=1.5, late_webhooks=0.05),
        Chaos(error_weights=(1, 0, 3), api_errors=0.5, retry_after=0),
        *PRESETS.values(),
    ):
        assert Chaos.parse(chaos.spec()) == chaos
    assert Chaos(seed=7, api_errors=0.1).spec() == "seed=7,api=0.1"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty chaos spec"),
        ("sunny", "unknown chaos preset 'sunny'"),
        ("api=lots", "not a number"),
        ("apii=0.1", "unknown chaos key 'apii'"),
        ("api=1.5", "share of calls from 0 to 1"),
        ("api=0.7,slow=0.5", r"api_errors \+ slow must not exceed 1"),
        ("duplicate=0.6,late=0.6", "must not exceed 1"),
        ("seed=1.5", "whole number"),
        ("late_delay=-1", "must not be negative"),
        ("api=0.1,429=0,502=0,503=0", "must not all be 0"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Chaos.parse(spec)


def test_the_same_seed_gives_the_same_decisions_and_another_seed_others() -> None:
    chaos = Chaos(seed=11, api_errors=0.3, slow=0.1)
    plan_a, plan_b = ChaosPlan(chaos), ChaosPlan(chaos)
    run_a = [plan_a.api(SEND) for _ in range(200)]
    run_b = [plan_b.api(SEND) for _ in range(200)]
    assert run_a == run_b
    assert {"429", "502", "503", "slow", None} == set(run_a)
    other = ChaosPlan(Chaos(seed=12, api_errors=0.3, slow=0.1))
    assert [other.api(SEND) for _ in range(200)] != run_a
    webhooks = Chaos(seed=11, duplicate_webhooks=0.2, late_webhooks=0.2, failed_first_delivery=0.2)
    plan_c, plan_d = ChaosPlan(webhooks), ChaosPlan(webhooks)
    assert [plan_c.webhook("@echo>+1 imessage.received") for _ in range(200)] == [
        plan_d.webhook("@echo>+1 imessage.received") for _ in range(200)
    ]


def test_other_streams_in_any_order_do_not_change_a_streams_decisions() -> None:
    # Concurrency interleaves conversations differently on every run; each conversation's
    # own calls must still meet the same faults.
    chaos = Chaos(seed=5, api_errors=0.4)
    alone = ChaosPlan(chaos)
    expected = [alone.api(SEND) for _ in range(100)]
    mixed = ChaosPlan(chaos)
    shuffler = random.Random(99)
    got: list[object] = []
    others = 0
    while len(got) < 100:
        if shuffler.random() < 0.6:
            mixed.api(OTHER)
            others += 1
        else:
            got.append(mixed.api(SEND))
    assert others > 50
    assert got == expected


def test_api_faults_come_in_their_shares_and_weights() -> None:
    chaos = Chaos(seed=1, api_errors=0.1, slow=0.05, error_weights=(2, 1, 1))
    plan = ChaosPlan(chaos)
    counts = Counter(plan.api(f"GET /api/v1/x {n % 37}") for n in range(DRAWS))
    errors = counts["429"] + counts["502"] + counts["503"]
    assert errors / DRAWS == pytest.approx(0.10, abs=0.01)
    assert counts["slow"] / DRAWS == pytest.approx(0.05, abs=0.008)
    assert counts["429"] / errors == pytest.approx(0.5, abs=0.05)
    assert counts["502"] / errors == pytest.approx(0.25, abs=0.05)
    assert counts["503"] / errors == pytest.approx(0.25, abs=0.05)


def test_webhook_faults_come_in_their_shares() -> None:
    chaos = Chaos(seed=2, duplicate_webhooks=0.04, late_webhooks=0.03, failed_first_delivery=0.03)
    plan = ChaosPlan(chaos)
    counts = Counter(plan.webhook(f"@echo>+1555 e{n % 11}") for n in range(DRAWS))
    assert counts["duplicate"] / DRAWS == pytest.approx(0.04, abs=0.007)
    assert counts["late"] / DRAWS == pytest.approx(0.03, abs=0.006)
    assert counts["failed_first"] / DRAWS == pytest.approx(0.03, abs=0.006)
    assert counts[None] / DRAWS == pytest.approx(0.90, abs=0.01)


def test_without_a_retry_left_a_webhook_is_never_duplicated_or_failed() -> None:
    chaos = Chaos(duplicate_webhooks=0.5, failed_first_delivery=0.5)
    plan = ChaosPlan(chaos)
    assert {plan.webhook("s", can_retry=False) for _ in range(200)} == {None}
    assert {plan.webhook("s") for _ in range(200)} == {"duplicate", "failed_first"}


def test_a_stream_stays_in_step_when_retries_run_out() -> None:
    chaos = Chaos(seed=4, duplicate_webhooks=0.3, late_webhooks=0.3)
    plan, twin = ChaosPlan(chaos), ChaosPlan(chaos)
    for _ in range(50):
        plan.webhook("s", can_retry=False)
        twin.webhook("s")
    assert [plan.webhook("s") for _ in range(50)] == [twin.webhook("s") for _ in range(50)]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_api_is_down_for_the_window_and_up_after_it() -> None:
    clock = FakeClock()
    control = ChaosControl(clock=clock)
    assert not control.is_down() and control.down_for == 0.0
    control.take_down(5)
    assert control.is_down() and control.down_for == pytest.approx(5.0)
    clock.now += 4.9
    assert control.is_down()
    clock.now += 0.2
    assert not control.is_down() and control.down_for == 0.0
    control.take_down(60)
    with control.paused():
        assert not control.is_down()  # set-up calls pass
    assert control.is_down()
    control.take_down(0)
    assert not control.is_down()
    with pytest.raises(ValueError, match="seconds >= 0"):
        control.take_down(-1)


def test_the_switch_keeps_settings_and_position_and_pausing_uses_up_nothing() -> None:
    chaos = Chaos(seed=9, api_errors=0.5)
    reference = ChaosPlan(chaos)
    wanted = [reference.api(SEND) for _ in range(40)]

    control = ChaosControl(chaos)
    assert control.enabled and control.active
    got = [control.api_fault(SEND) for _ in range(10)]
    with control.paused():
        assert not control.active
        assert control.api_fault(SEND) is None  # uses up no decision
    control.disable()
    assert control.api_fault(SEND) is None
    control.enable()  # the same settings, the plan where it was
    assert control.config == chaos
    got += [control.api_fault(SEND) for _ in range(30)]
    assert [g[0] if g else None for g in got] == wanted
    faults = sum(1 for fault in wanted if fault is not None)
    assert control.stats["api_calls"] == 40
    assert sum(control.stats[code] for code in ("429", "502", "503")) == faults
    assert len(control.log) == faults

    control.configure(chaos)  # new settings: a fresh plan and fresh stats
    assert control.stats == Counter()
    assert control.api_fault(SEND) == ((wanted[0], chaos) if wanted[0] else None)


def test_enabling_without_settings_uses_the_mild_preset() -> None:
    control = ChaosControl()
    assert not control.enabled and control.config is None
    assert control.api_fault(SEND) is None
    control.enable()
    assert control.enabled and control.config == PRESETS["mild"]
    control.configure(None)
    assert not control.enabled and control.config is None
    status = control.status()
    assert status["enabled"] is False and status["spec"] is None and status["stats"] == {}
