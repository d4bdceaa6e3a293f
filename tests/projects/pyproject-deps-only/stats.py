from toolz import valmap


def means(stations):
    return valmap(lambda t: sum(t) / len(t), {s["name"]: s["temps"] for s in stations})
