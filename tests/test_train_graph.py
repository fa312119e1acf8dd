"""The callback dependency graph: ordering and every construction-time error."""

from __future__ import annotations

import pytest
import torch

from weft.train import (
    NO_CONFLICT,
    READ,
    WRITE,
    Callback,
    GraphError,
    Incompatible,
    Learner,
    Metrics,
    RunFirst,
)
from weft.train.graph import order_callbacks


def cb(name: str, access: dict | None = None, run_after=(), asynchronous=False, resolve=None):
    """A callback class named `name` with the given declarations."""
    ns = {
        "access": access or {},
        "run_after": tuple(run_after),
        "asynchronous": asynchronous,
    }
    if resolve is not None:
        ns["resolve"] = resolve
    return type(name, (Callback,), ns)()


def names(callbacks):
    return [c.name for c in callbacks]


def tiny_learner(callbacks, defaults=False):
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return Learner(model, torch.nn.functional.mse_loss, opt, callbacks=callbacks, defaults=defaults)


def test_writer_runs_before_reader_whatever_the_list_order():
    reader = cb("Reader", {"cbstate.x": READ})
    writer = cb("Writer", {"cbstate.x": WRITE})
    other = cb("Other")
    assert names(order_callbacks([reader, other, writer])) == ["Other", "Writer", "Reader"]


def test_prefix_paths_overlap_for_ordering():
    reader = cb("Reader", {"cbstate": READ})
    writer = cb("Writer", {"cbstate.metrics": WRITE})
    assert names(order_callbacks([reader, writer])) == ["Writer", "Reader"]


def test_run_after_orders_by_class_or_name():
    a = cb("A")
    b = cb("B", run_after=("A",))
    c = cb("C", run_after=(type(b),))
    assert names(order_callbacks([c, b, a])) == ["A", "B", "C"]


def test_run_after_a_missing_callback_is_ignored():
    assert names(order_callbacks([cb("B", run_after=("Absent",))])) == ["B"]


def test_unrelated_callbacks_keep_list_order():
    assert names(order_callbacks([cb("Z"), cb("A"), cb("M")])) == ["Z", "A", "M"]


def test_write_write_conflict_names_both_and_the_field():
    with pytest.raises(
        GraphError,
        match=r"A and B both write 'cbstate.x' and neither says how to order them; define resolve\(\)",
    ):
        order_callbacks([cb("A", {"cbstate.x": WRITE}), cb("B", {"cbstate": WRITE})])


@pytest.mark.parametrize("resolver_first", [True, False])
def test_resolutions_are_symmetric(resolver_first):
    def run_me_first(self, other):
        return RunFirst(self) if other.name == "Plain" else None

    resolver = cb("Resolver", {"model": WRITE}, resolve=run_me_first)
    plain = cb("Plain", {"model": WRITE})
    given = [resolver, plain] if resolver_first else [plain, resolver]
    assert names(order_callbacks(given)) == ["Resolver", "Plain"]


def test_run_first_can_name_the_other_callback():
    def after_you(self, other):
        return RunFirst(other)

    a = cb("A", {"model": WRITE}, resolve=after_you)
    b = cb("B", {"model": WRITE})
    assert names(order_callbacks([a, b])) == ["B", "A"]


def test_no_conflict_allows_both_writes_and_drops_the_order():
    a = cb("A", {"model": WRITE, "cbstate.y": READ}, resolve=lambda self, o: NO_CONFLICT)
    b = cb("B", {"model": WRITE, "cbstate.y": WRITE})
    assert names(order_callbacks([a, b])) == ["A", "B"]


def test_incompatible_is_an_error_with_the_reason():
    a = cb("A", {"model": WRITE}, resolve=lambda self, o: Incompatible("both rescale gradients"))
    b = cb("B", {"model": WRITE})
    with pytest.raises(GraphError, match="B and A cannot be used together: both rescale gradients"):
        order_callbacks([b, a])


def test_disagreeing_resolutions_are_an_error():
    a = cb("A", {"model": WRITE}, resolve=lambda self, o: RunFirst(self))
    b = cb("B", {"model": WRITE}, resolve=lambda self, o: RunFirst(self))
    with pytest.raises(
        GraphError, match=r"A and B disagree .* says RunFirst\(A\), .* says RunFirst\(B\)"
    ):
        order_callbacks([a, b])


def test_cycle_error_prints_the_whole_cycle_with_reasons():
    a = cb("A", {"cbstate.a": WRITE, "cbstate.c": READ})
    b = cb("B", {"cbstate.b": WRITE, "cbstate.a": READ})
    c = cb("C", {"cbstate.c": WRITE, "cbstate.b": READ})
    with pytest.raises(GraphError) as err:
        order_callbacks([a, b, c])
    msg = str(err.value)
    assert "the callbacks form a cycle: " in msg
    cycle = msg.split("cycle: ")[1].split(" (")[0].split(" -> ")
    assert len(cycle) == 4 and cycle[0] == cycle[-1] and set(cycle) == {"A", "B", "C"}
    for i in range(3):
        assert cycle[i + 1] in ({"A": "B", "B": "C", "C": "A"}[cycle[i]],)
    assert "B reads 'cbstate.a', which A writes" in msg
    assert "A reads 'cbstate.c', which C writes" in msg


def test_cycle_through_run_after_is_reported():
    a = cb("A", {"cbstate.a": WRITE}, run_after=("B",))
    b = cb("B", {"cbstate.a": READ})
    with pytest.raises(
        GraphError, match=r"cycle: (A -> B -> A|B -> A -> B).*A declares run_after B"
    ):
        order_callbacks([a, b])


def test_reading_shared_state_nobody_writes_is_an_error():
    with pytest.raises(
        GraphError,
        match=r"Stopper reads 'cbstate.metrics', but no callback writes it; add the callback",
    ):
        order_callbacks([cb("Stopper", {"cbstate.metrics": READ})])


def test_reading_learner_state_needs_no_writer():
    assert names(order_callbacks([cb("R", {"step.loss": READ, "model": READ})])) == ["R"]


def test_asynchronous_callbacks_may_not_write():
    with pytest.raises(
        GraphError, match=r"Logger is asynchronous but declares WRITE on \['cbstate.x'\]"
    ):
        order_callbacks([cb("Logger", {"cbstate.x": WRITE}, asynchronous=True)])


def test_same_object_twice_is_an_error():
    a = cb("A")
    with pytest.raises(GraphError, match=r"A appears twice in the callbacks \(positions 0 and 1\)"):
        order_callbacks([a, a])


@pytest.mark.parametrize(
    ("access", "message"),
    [
        (
            {"stpe.loss": READ},
            r"Bad.access names unknown field 'stpe' in 'stpe.loss'; the learner has: model",
        ),
        ({"step.los": READ}, r"unknown step field 'los' in 'step.los'; step has: batch, inputs"),
        ({"progress": WRITE}, r"Bad.access declares WRITE on 'progress'; the loop alone writes it"),
        ({"step..loss": READ}, r"malformed path 'step..loss'"),
        ({"model": "write"}, r"Bad.access\['model'\] must be READ or WRITE"),
    ],
)
def test_bad_access_declarations_are_reported_at_construction(access, message):
    with pytest.raises((ValueError, TypeError), match=message):
        tiny_learner([cb("Bad", access)])


def test_learner_checks_the_graph_at_construction():
    with pytest.raises(GraphError, match=r"EarlyStopper reads 'cbstate.metrics'"):
        tiny_learner([cb("EarlyStopper", {"cbstate.metrics": READ})])
    learner = tiny_learner([Metrics(), cb("EarlyStopper", {"cbstate.metrics": READ})])
    assert names(learner.order) == ["Metrics", "EarlyStopper"]


def test_add_and_remove_recheck_and_leave_the_learner_unchanged_on_error():
    learner = tiny_learner([cb("A", {"model": WRITE})])
    with pytest.raises(GraphError, match="A and B both write 'model'"):
        learner.add_callback(cb("B", {"model": WRITE}))
    assert names(learner.callbacks) == ["A"]

    metrics = Metrics()
    learner.add_callback(metrics)
    learner.add_callback(cb("Reader", {"cbstate.metrics": READ}))
    with pytest.raises(
        GraphError, match=r"Reader reads 'cbstate.metrics', but no callback writes it"
    ):
        learner.remove_callback(metrics)
    assert names(learner.callbacks) == ["A", "Metrics", "Reader"]
    learner.remove_callback(type(learner.callbacks[2]))
    assert learner.remove_callback(Metrics) is metrics
    assert names(learner.callbacks) == ["A"]


def test_remove_callback_errors_name_what_is_missing():
    learner = tiny_learner([])
    with pytest.raises(ValueError, match=r"remove_callback\(Metrics\) matches 0 callbacks"):
        learner.remove_callback(Metrics)
    with pytest.raises(ValueError, match="Metrics is not a callback of this learner"):
        learner.remove_callback(Metrics())


def test_defaults_are_ordered_by_their_declarations():
    learner = tiny_learner([], defaults=True)
    order = names(learner.order)
    assert order.index("Metrics") < order.index("History")
    assert order.index("Metrics") < order.index("ProgressBar")
