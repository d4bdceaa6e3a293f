from toolz import frequencies, pipe
from toolz.curried import map as cmap


def word_counts(text):
    return pipe(text.lower().split(), cmap(lambda w: w.strip(".,;:!?")), frequencies)
