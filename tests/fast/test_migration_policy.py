"""The migration policy, rule by rule, without a hypervisor."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vpd.migration import policy
from vpd.migration.policy import Action, Settings, State, Tick


def tick(**kw) -> Tick:
    base = dict(elapsed_s=1.0, data_remaining=100, data_processed=100, iteration=1, dirty_rate_bps=0.0,
                throughput_bps=100e6, seconds_since_progress=0.0)
    return Tick(**{**base, **kw})


def test_schedule_starts_low_and_ends_at_the_users_maximum():
    s = policy.downtime_schedule(Settings(max_downtime_ms=300, start_downtime_ms=10, downtime_steps=5))
    assert s[0] == 10 and s[-1] == 300 and s == sorted(s)


@given(st.integers(1, 60000), st.integers(1, 1000), st.integers(1, 20))
def test_schedule_never_exceeds_the_maximum(maximum, start, steps):
    s = policy.downtime_schedule(Settings(max_downtime_ms=maximum, start_downtime_ms=start, downtime_steps=steps))
    assert max(s) == maximum and min(s) >= 1 and s == sorted(set(s))


def test_an_idle_guest_gets_no_action():
    settings = Settings()
    state = State(downtime_ms=10)
    assert policy.decide(tick(iteration=1), settings, state) == []


def test_downtime_rises_one_step_per_two_unconverged_iterations():
    settings = Settings(max_downtime_ms=300, start_downtime_ms=10, downtime_steps=5, step_every_iterations=2)
    state = State(downtime_ms=10)
    seen = []
    for it in range(1, 20):
        for action in policy.decide(tick(iteration=it), settings, state):
            policy.apply(action, state)
            seen.append((it, action.value))
    assert [v for _, v in seen] == policy.downtime_schedule(settings)[1:]
    assert seen[0][0] == 2 and state.downtime_ms == 300


def test_stall_aborts_before_anything_else():
    actions = policy.decide(tick(seconds_since_progress=31, elapsed_s=1000), Settings(timeout_s=10), State(10))
    assert actions == [Action("abort", reason="no progress for 31 s")]


def test_an_abort_is_asked_for_once():
    # A cancelled job lingers (a silent peer) and still looks stalled: no second abort,
    # and the report keeps the first reason.
    state = State(10)
    for action in policy.decide(tick(seconds_since_progress=5), Settings(stall_s=5), state):
        policy.apply(action, state)
    assert state.aborted and state.steps == ["abort: no progress for 5 s"]
    assert policy.decide(tick(seconds_since_progress=24, elapsed_s=99), Settings(stall_s=5, timeout_s=10), state) == []


def test_timeout_applies_the_chosen_action():
    assert policy.decide(tick(elapsed_s=11), Settings(timeout_s=10, timeout_action="suspend"), State(10))[0].kind == "suspend"
    assert policy.decide(tick(elapsed_s=11), Settings(timeout_s=10), State(10))[0].kind == "abort"


def test_timeout_postcopy_without_permission_aborts():
    act = policy.decide(tick(elapsed_s=11), Settings(timeout_s=10, timeout_action="postcopy"), State(10))
    assert act[0].kind == "abort"


def test_timeout_fires_once():
    state = State(10)
    settings = Settings(timeout_s=10, timeout_action="suspend")
    policy.apply(policy.decide(tick(elapsed_s=11), settings, state)[0], state)
    assert all(a.kind != "suspend" for a in policy.decide(tick(elapsed_s=12), settings, state))


def test_postcopy_when_outpaced_at_max_downtime_and_allowed():
    settings = Settings(max_downtime_ms=300, postcopy_allowed=True)
    outpaced = tick(iteration=5, dirty_rate_bps=500e6, throughput_bps=100e6)
    assert policy.decide(outpaced, settings, State(downtime_ms=300))[0].kind == "postcopy"
    assert policy.decide(outpaced, Settings(max_downtime_ms=300), State(downtime_ms=300)) == []
    assert not policy.should_postcopy(outpaced, settings, State(downtime_ms=50))


def test_steps_are_recorded_for_the_report():
    state = State(10)
    policy.apply(Action("set-downtime", 30, "iteration 2 did not converge"), state)
    assert state.steps == ["set-downtime=30: iteration 2 did not converge"] and state.downtime_ms == 30


def test_a_quiet_guest_needs_no_auto_converge():
    plan = policy.start_plan(5, 119, requested=False)
    assert not plan.auto_converge and "converges" in plan.reason


def test_a_guest_outpacing_the_link_starts_throttled_enough():
    plan = policy.start_plan(1000, 119, requested=False)
    assert plan.auto_converge and plan.throttle_initial == 99
    # from the first throttle on, the link carries the writes with room to spare
    assert 1000 * policy.SAMPLING_MARGIN * (1 - plan.throttle_initial / 100) <= 119 / 2
    assert policy.start_plan(100, 119, requested=False).throttle_initial == 80


@given(st.floats(0, 100000), st.floats(1, 100000), st.booleans())
def test_start_plan_throttle_is_within_qemus_range(dirty, link, requested):
    plan = policy.start_plan(dirty, link, requested)
    if plan.throttle_initial is not None:
        assert 20 <= plan.throttle_initial <= 99
    if requested:
        assert plan.auto_converge


def test_unknown_dirty_rate_keeps_the_users_choice():
    assert policy.start_plan(None, 119, requested=True).auto_converge
    assert not policy.start_plan(None, 119, requested=False).auto_converge


def test_an_idle_guest_measured_at_zero_converges():
    plan = policy.start_plan(0, 119, requested=False)
    assert not plan.auto_converge and "converges" in plan.reason


def test_the_link_comes_from_the_options_else_the_inventory_else_1_gbit():
    from vpd.connect.inventory import Host
    from vpd.migration.migrate import MigrateOptions, _link_mib_s

    plain = Host(name="a", uri="test:///default")
    fast = Host(name="b", uri="test:///default", link_mbit=10_000, lab=True)
    slow = Host(name="c", uri="test:///default", link_mbit=100, lab=True)
    mib_s = lambda mbit: mbit * 1_000_000 / 8 / 2**20  # noqa: E731
    assert _link_mib_s(plain, plain, MigrateOptions()) == mib_s(1000)
    assert _link_mib_s(plain, fast, MigrateOptions()) == mib_s(10_000)
    assert _link_mib_s(fast, slow, MigrateOptions()) == mib_s(100)  # the slower link bounds the stream
    assert _link_mib_s(fast, slow, MigrateOptions(link_mib_s=42.0)) == 42.0



def test_zstd_compression_is_multifd_and_refuses_what_qemu_cannot_combine_with_it():
    import libvirt
    import pytest

    from vpd.core.errors import UsageError
    from vpd.migration.migrate import MigrateOptions, _flags

    value, names = _flags(MigrateOptions(compression="zstd"), live=True, unsafe=False, auto_converge=False)
    assert {"PARALLEL", "COMPRESSED"} <= set(names) and value & libvirt.VIR_MIGRATE_PARALLEL
    plain = _flags(MigrateOptions(), live=True, unsafe=False, auto_converge=False)[1]
    assert "PARALLEL" not in plain and "COMPRESSED" not in plain
    assert "PARALLEL" not in _flags(MigrateOptions(compression="zstd"), live=False, unsafe=False,
                                    auto_converge=False)[1]  # offline: no stream at all
    for clash in ({"postcopy": True}, {"compressed": True}):
        with pytest.raises(UsageError, match="cannot be combined"):
            MigrateOptions(compression="zstd", **clash)
    with pytest.raises(UsageError, match="none or zstd"):
        MigrateOptions(compression="lz4")  # type: ignore[arg-type]


# --- how many of a drain's migrations run at once ------------------------------------------------

def test_idle_guests_drain_as_many_at_once_as_the_source_cpus_allow():
    c = policy.drain_concurrency(119.2, [0.0, 0.1, 0.0, 0.2, 0.0, 0.0, 0.1, 0.0], source_cpus=2)
    assert c.parallel == 4 and "bound by 2 per source CPU" in c.reason and "link carries 298 such" in c.reason
    idle = policy.drain_concurrency(119.2, [0.0] * 4, source_cpus=2)  # a tie: the first named bound
    assert idle.parallel == 4 and idle.reason.endswith("(no limit from the link); bound by VMs to move")
    assert c.link_share_mib_s == round(119.2 / 4, 1)


def test_a_dirtying_guest_limits_the_streams_to_what_the_link_carries():
    # 119 MiB/s link, one guest writes 20 MiB/s: each stream needs 40 MiB/s, the link carries 2
    c = policy.drain_concurrency(119.0, [20.0, 1.0, 1.0, 1.0], source_cpus=8)
    assert c.parallel == 2 and "bound by link" in c.reason and "20.0 MiB/s" in c.reason


def test_a_guest_outpacing_half_the_link_drains_one_at_a_time():
    assert policy.drain_concurrency(100.0, [80.0, 0.0, 0.0], source_cpus=4).parallel == 1


def test_few_guests_bound_the_streams():
    c = policy.drain_concurrency(1000.0, [1.0, 1.0], source_cpus=8)
    assert c.parallel == 2 and "bound by VMs to move" in c.reason


def test_one_or_no_guest_and_unknown_rates_mean_one_at_a_time():
    assert policy.drain_concurrency(100.0, [5.0], 4).parallel == 1
    assert policy.drain_concurrency(100.0, [], 4).reason == "nothing to move"
    unknown = policy.drain_concurrency(100.0, [1.0, None, 1.0], 4)
    assert unknown.parallel == 1 and "unknown" in unknown.reason


@settings(max_examples=50)  # a pure min() of four bounds: half hypothesis's default covers it, in half the time
@given(st.floats(1, 10_000), st.lists(st.floats(0, 5_000), min_size=2, max_size=30), st.integers(1, 64),
       st.integers(1, 16))
def test_every_stream_gets_twice_its_guests_dirty_rate_or_there_is_one(link, rates, cpus, cap):
    c = policy.drain_concurrency(link, list(rates), cpus, cap)
    assert 1 <= c.parallel <= min(len(rates), policy.STREAMS_PER_CPU * cpus, cap)
    assert c.parallel == 1 or link / c.parallel >= 2 * max(rates)
    assert c.link_share_mib_s == round(link / c.parallel, 1)


# --- the first downtime limit, and the bandwidth QEMU may assume at switchover -------------------

def test_an_idle_guest_starts_at_the_pause_goal_so_the_second_pass_switches_over():
    # 0.2 MiB/s sampled, 256 MiB over 119 MiB/s: about 1 ms of RAM left after the first pass
    assert policy.start_downtime_ms(0.2, 119.2, 256, 300) == policy.PAUSE_GOAL_MS
    assert policy.start_downtime_ms(0.0, 119.2, 256, 300) == policy.PAUSE_GOAL_MS


def test_a_busy_or_unknown_guest_starts_low_and_never_above_the_users_maximum():
    # 50 MiB/s over a 119 MiB/s link leaves 1.8 s of RAM after the first pass: the policy raises
    assert policy.start_downtime_ms(50, 119.2, 256, 300) == policy.LOW_START_MS
    assert policy.start_downtime_ms(None, 119.2, 256, 300) == policy.LOW_START_MS
    assert policy.start_downtime_ms(0.0, 119.2, 256, 15) == 15
    assert policy.start_downtime_ms(0.0, 119.2, 256, 5) == 5
    assert policy.start_downtime_ms(0.0, 0, 256, 300) == policy.LOW_START_MS


def test_the_boundary_is_the_goal_in_ms_of_link():
    # what is left: dirty x 2 x 256/100 MiB at 100 MiB/s; 20 ms of it at dirty = 0.390625 MiB/s
    assert policy.start_downtime_ms(0.390625, 100, 256, 300) == policy.PAUSE_GOAL_MS
    assert policy.start_downtime_ms(0.40, 100, 256, 300) == policy.LOW_START_MS


@settings(max_examples=25)  # two outcomes and a cap: a few dozen cases cover them
@given(st.floats(0, 2000), st.floats(1, 5000), st.floats(16, 65536), st.integers(1, 60000))
def test_the_start_is_one_of_the_two_and_within_the_maximum(dirty, link, memory, maximum):
    start = policy.start_downtime_ms(dirty, link, memory, maximum)
    assert start <= maximum and start in (policy.PAUSE_GOAL_MS, policy.LOW_START_MS, maximum)


def test_only_a_stated_link_is_passed_as_the_switchover_bandwidth():
    assert policy.switchover_bandwidth_mib_s(119.2, stated=True) == 119
    assert policy.switchover_bandwidth_mib_s(119.2, stated=False) is None
    assert policy.switchover_bandwidth_mib_s(None, stated=True) is None
    assert policy.switchover_bandwidth_mib_s(0.4, stated=True) == 1
