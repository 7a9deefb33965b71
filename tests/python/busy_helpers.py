"""Module-level functions the busy-machine tests send to workers."""


def produce(ch, n):
    """Send n small messages on ch, then close it."""
    for i in range(n):
        ch.send(i)
    ch.close()
    return n


def consume(ch):
    """Receive until ch is closed; how many came."""
    got = 0
    for _ in ch:
        got += 1
    return got
