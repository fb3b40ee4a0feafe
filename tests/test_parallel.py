"""descnet.parallel.ordered_map: order, bounded look-ahead, errors, the serial path."""
from __future__ import annotations

import threading
import time

import pytest

from descnet.parallel import ordered_map


def test_results_come_back_in_input_order_although_they_finish_out_of_order():
    def slow_first(i: int) -> int:
        time.sleep(0.02 if i % 3 == 0 else 0.0)
        return i * i

    assert list(ordered_map(slow_first, range(20), workers=3)) == [i * i for i in range(20)]


def test_work_really_runs_on_several_threads():
    barrier = threading.Barrier(2, timeout=5)  # fails (BrokenBarrierError) unless two calls run at once

    def meet(i: int) -> str:
        barrier.wait()
        return threading.current_thread().name

    names = list(ordered_map(meet, range(4), workers=2))
    assert len(set(names)) == 2 and all(n.startswith("descnet") for n in names)


def test_items_are_taken_at_most_two_per_worker_ahead_of_the_reader():
    taken = []

    def items():
        for i in range(100):
            taken.append(i)
            yield i

    results = ordered_map(lambda i: i, items(), workers=2)
    assert next(results) == 0
    assert len(taken) == 4  # 2 * workers in flight when the first result is handed out
    assert list(results) == list(range(1, 100))


def test_an_error_is_raised_at_its_item_and_later_work_is_cancelled():
    done = []

    def fail_at_3(i: int) -> int:
        if i == 3:
            raise ValueError("item 3 is bad")
        time.sleep(0.01)
        done.append(i)
        return i

    got = []
    with pytest.raises(ValueError, match="item 3 is bad"):
        for r in ordered_map(fail_at_3, range(1000), workers=2):
            got.append(r)
    assert got == [0, 1, 2]
    assert len(done) < 20


def test_one_worker_runs_in_the_calling_thread():
    caller = threading.current_thread().name
    assert set(ordered_map(lambda i: threading.current_thread().name, range(5), workers=1)) == {caller}
