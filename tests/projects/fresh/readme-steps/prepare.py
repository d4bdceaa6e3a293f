import argparse
import collections
import json
import os
import re

import six

p = argparse.ArgumentParser()
p.add_argument("--corpus", default="corpus.txt")
p.add_argument("--min-count", type=int, default=1)
args = p.parse_args()
words = re.findall(r"[a-z']+", open(args.corpus).read().lower())
counts = collections.Counter(words)
vocab = {w: c for w, c in six.iteritems(counts) if c >= args.min_count}
os.makedirs("work", exist_ok=True)
json.dump(vocab, open("work/vocab.json", "w"), indent=1, sort_keys=True)
print("wrote work/vocab.json (%d words)" % len(vocab))
