"""Root requests decided before the SDK when its sampler decides by trace id alone."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind

from app.telemetry import INSTRUMENTATION_NAME, BackendMetrics, Telemetry, current_trace_id

LOW_64_BITS = (1 << 64) - 1


class Traced:
    """A Telemetry on its own SDK provider, with its spans and the SDK calls counted."""

    def __init__(self, sampler: Sampler | None = None, **provider: Any) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(sampler=sampler, **provider)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        # The provider caches its tracer per scope: Telemetry gets this same object.
        tracer = self.provider.get_tracer(INSTRUMENTATION_NAME)
        self.sdk_calls = 0
        start_span: Callable[..., trace.Span] = tracer.start_span

        def counting(*args: Any, **kwargs: Any) -> trace.Span:
            self.sdk_calls += 1
            return start_span(*args, **kwargs)

        tracer.start_span = counting  # type: ignore[method-assign]
        self.telemetry = Telemetry(BackendMetrics(), tracer_provider=self.provider)

    def spans(self, kind: SpanKind | None = None) -> list[Any]:
        return [s for s in self.exporter.get_finished_spans() if kind in (None, s.kind)]


def request(telemetry: Telemetry, index: int, headers: dict[str, str] | None = None) -> bool:
    """One negotiate or webhook request (alternating) with a hub method and a REST call
    inside, as the webhook runs them; whether its span was recorded."""
    if index % 2:
        with telemetry.negotiate("chat", user_id="u", headers=headers) as span:
            return span.is_recording()
    with telemetry.webhook(
        hub="chat", category="messages", event="echo", connection_id="c", headers=headers
    ) as span:
        with telemetry.hub_method("chat", "messages", "echo", "c"):
            with telemetry.rest_call("send_to_all", "http://localhost:8888") as call:
                call.done(202)
        return span.is_recording()


@pytest.fixture
def seeded() -> Iterator[None]:
    """The trace ids (drawn from ``random`` by the SDK and the head sampler) reproducible."""
    state = random.getstate()
    random.seed(12)
    yield
    random.setstate(state)


@pytest.mark.parametrize(
    "sampler",
    [ParentBasedTraceIdRatio(0.0), TraceIdRatioBased(0.0), ALWAYS_OFF, ParentBased(ALWAYS_OFF)],
    ids=["parentbased_traceidratio", "traceidratio", "always_off", "parentbased_always_off"],
)
def test_at_ratio_zero_a_root_request_never_reaches_the_sdk(sampler: Sampler) -> None:
    """Ratio 0 (or always-off): no SDK span is made or exported for root requests, their
    children make none either, and each request still has its own trace id, which its
    REST calls propagate as not sampled."""
    traced = Traced(sampler)
    telemetry = traced.telemetry
    seen: set[str] = set()
    for index in range(200):
        assert not request(telemetry, index)
    with telemetry.webhook(hub="chat", category="messages") as span:
        trace_id = current_trace_id()
        assert trace_id is not None and trace_id not in seen
        assert format(span.get_span_context().trace_id, "032x") == trace_id
        headers: dict[str, str] = {}
        with telemetry.rest_call("send_to_all", "http://localhost:8888") as call:
            Telemetry.inject(headers)
            call.done(202)
        version, propagated, _, flags = headers["traceparent"].split("-")
        assert version == "00" and propagated == trace_id
        assert not int(flags, 16) & 0x01  # not sampled
    assert current_trace_id() is None  # the dropped request's span is no longer current
    assert traced.sdk_calls == 0
    assert traced.spans() == []


def test_at_ratio_one_every_request_is_traced_through_the_sdk() -> None:
    """Ratio 1: every root request is the SDK's sampled server span, each in its own
    trace, with its hub method and REST call as children."""
    traced = Traced(ParentBasedTraceIdRatio(1.0))
    for index in range(100):
        assert request(traced.telemetry, index)
    roots = traced.spans(SpanKind.SERVER)
    assert len(roots) == 100 and all(span.parent is None for span in roots)
    assert len({span.context.trace_id for span in roots}) == 100
    assert len(traced.spans(SpanKind.CLIENT)) == 50  # one REST call per webhook request
    assert traced.sdk_calls == 100 + 50 * 2  # the roots, then each method and REST call


@pytest.mark.parametrize(
    ("ratio", "flag", "recorded"),
    [(0.0, "01", True), (1.0, "00", False)],
    ids=["ratio-0-caller-sampled", "ratio-1-caller-not-sampled"],
)
def test_with_a_traceparent_the_sdk_decides(ratio: float, flag: str, recorded: bool) -> None:
    """A request continuing a caller's trace is the SDK's to decide, by the caller's flag
    (``parentbased_traceidratio``), whatever the ratio."""
    traced = Traced(ParentBasedTraceIdRatio(ratio))
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    headers = {"traceparent": f"00-{trace_id}-b7ad6b7169203331-{flag}"}
    for index in range(10):
        assert request(traced.telemetry, index, headers) is recorded
    assert traced.sdk_calls == 10 + (5 * 2 if recorded else 0)
    roots = traced.spans(SpanKind.SERVER)
    assert len(roots) == (10 if recorded else 0)
    assert all(format(span.context.trace_id, "032x") == trace_id for span in roots)


def test_under_a_current_span_the_sdk_decides() -> None:
    """Under another instrumentation's request span the webhook span is its child: the
    SDK's sampler decides (by that parent), not the head sampler."""
    traced = Traced(ParentBasedTraceIdRatio(0.0))
    outer = traced.provider.get_tracer("outer").start_span("POST /x")
    assert not outer.is_recording()  # dropped by the SDK, but a valid parent
    with trace.use_span(outer, end_on_exit=True):
        with traced.telemetry.webhook(category="connections") as span:
            assert not span.is_recording()
            assert span.get_span_context().trace_id == outer.get_span_context().trace_id
    assert traced.sdk_calls == 1


@pytest.mark.parametrize(
    "sampler", [TraceIdRatioBased(0.25), ParentBasedTraceIdRatio(0.25)], ids=["plain", "parent"]
)
def test_the_sampled_share_matches_the_ratio_with_the_samplers_own_test(
    sampler: Sampler, seeded: None
) -> None:
    """Over 20,000 root requests at 0.25 the sampled share is within 5 standard deviations
    of it, and each decision is the sampler's own: recorded exactly when the trace id's
    low 64 bits are under its bound (the SDK makes the same call on the same id)."""
    traced = Traced(sampler)
    bound = TraceIdRatioBased.get_bound_for_rate(0.25)
    total = 20_000
    sampled = 0
    for _ in range(total):
        with traced.telemetry.negotiate("chat") as span:
            trace_id = span.get_span_context().trace_id
            assert span.is_recording() is (trace_id & LOW_64_BITS < bound)
            sampled += span.is_recording()
    sigma = (total * 0.25 * 0.75) ** 0.5
    assert abs(sampled - total * 0.25) < 5 * sigma
    assert traced.sdk_calls == sampled == len(traced.spans())


class KeepsEverything(Sampler):
    """A sampler of the user's own: the head sampler cannot know what it decides."""

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE)

    def get_description(self) -> str:
        return "KeepsEverything"


class ZeroLowBits(TraceIdRatioBased):
    """A subclass that decides differently than its parent class."""

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE)


class CountingIds(RandomIdGenerator):
    """A custom id generator: its ids are its own to make."""


@pytest.mark.parametrize(
    ("sampler", "provider"),
    [
        (ALWAYS_ON, {}),
        (ParentBased(ALWAYS_ON), {}),
        (KeepsEverything(), {}),
        (ParentBased(KeepsEverything()), {}),
        (ZeroLowBits(0.0), {}),
        (TraceIdRatioBased(0.0), {"id_generator": CountingIds()}),
    ],
    ids=["always_on", "parentbased_always_on", "custom", "parentbased_custom", "subclass", "ids"],
)
def test_any_other_sampler_or_id_generator_leaves_every_span_to_the_sdk(
    sampler: Sampler, provider: dict[str, Any]
) -> None:
    """Always-on, a custom sampler or a custom id generator: every request goes through
    the SDK's tracer, as before."""
    traced = Traced(sampler, **provider)
    for index in range(10):
        request(traced.telemetry, index)
    assert traced.sdk_calls >= 10
    recorded = len(traced.spans(SpanKind.SERVER))
    assert recorded == (0 if "id_generator" in provider else 10)


def test_the_sdks_own_span_metrics_keep_the_head_sampler_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the SDK counting its spans (dropped ones included), it makes them all."""
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    traced = Traced(ParentBasedTraceIdRatio(0.0))
    for index in range(10):
        request(traced.telemetry, index)
    assert traced.sdk_calls == 10


def test_the_sampler_is_read_from_the_sdks_environment_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OTEL_TRACES_SAMPLER / _ARG as the SDK reads them decide: at 0 nothing reaches
    the SDK, at 1 everything is traced; the variables are not touched."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    for arg, recorded in (("0", 0), ("1", 10)):
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
        traced = Traced()  # the provider's sampler from the environment
        for index in range(10):
            request(traced.telemetry, index)
        assert len(traced.spans(SpanKind.SERVER)) == recorded
        assert traced.sdk_calls == recorded * 2  # roots, then 5 methods and 5 REST calls
