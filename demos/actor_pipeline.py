"""An actor pipeline over channels: a producer feeds transformer actors,
which feed a slow aggregator actor.  The channels are small and bounded, so
backpressure is visible: the producer waits whenever the pipeline is full
instead of piling up memory, and the channel counters show it.

    python3 demos/actor_pipeline.py      (PYTHONPATH must reach isola)
"""
import time

import isola


class Transformer:
    """Squares every number it receives, until its input closes."""

    def run(self, inbox, outbox):
        handled = 0
        for n in inbox:
            outbox.send(n * n)
            handled += 1
        return handled


class Aggregator:
    """Sums what it receives, slowly (a stand-in for real work)."""

    def __init__(self, delay):
        self.delay = delay

    def run(self, inbox, expected):
        total = 0
        for _ in range(expected):
            total += inbox.recv()
            time.sleep(self.delay)
        return total


def main(items=400, delay=0.002):
    raw = isola.Channel(8)      # producer -> transformers
    squared = isola.Channel(4)  # transformers -> aggregator
    # one worker per actor: each runs a long loop
    with isola.Pool(4) as pool:
        transformers = [pool.spawn(Transformer) for _ in range(2)]
        aggregator = pool.spawn(Aggregator, delay)
        runs = [t.run(raw, squared) for t in transformers]
        total = aggregator.run(squared, items)
        t0 = time.perf_counter()
        for n in range(items):
            raw.send(n)  # blocks while the pipeline is full: backpressure
        raw.close()
        sent = time.perf_counter() - t0
        result = total.result()
        handled = [r.result() for r in runs]
    assert result == sum(n * n for n in range(items)), result
    st_raw, st_sq = raw.stats(), squared.stats()
    print(f"sum of squares of 0..{items - 1} = {result}")
    print(f"transformers handled {handled} items")
    print(f"producer spent {sent:.2f} s sending {items} items "
          f"(the aggregator takes {delay * 1000:.0f} ms per item)")
    print(f"raw channel:     peak depth {st_raw['peak_depth']}/{st_raw['capacity']}, "
          f"producer waited {st_raw['full_waits']} times (backpressure)")
    print(f"squared channel: peak depth {st_sq['peak_depth']}/{st_sq['capacity']}, "
          f"transformers waited {st_sq['full_waits']} times")
    return st_raw["full_waits"]


if __name__ == "__main__":
    main()
