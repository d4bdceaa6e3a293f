import argparse
import json
import math
import os

p = argparse.ArgumentParser()
p.add_argument("--smoothing", type=float, default=1.0)
args = p.parse_args()
vocab = json.load(open("work/vocab.json"))
total = sum(vocab.values()) + args.smoothing * len(vocab)
logp = {w: math.log((c + args.smoothing) / total) for w, c in vocab.items()}
os.makedirs("out", exist_ok=True)
with open("out/model.tsv", "w") as fh:
    for w in sorted(logp):
        fh.write("%s\t%.8f\n" % (w, logp[w]))
print("accuracy: %.4f" % (len([v for v in vocab.values() if v > 2]) / len(vocab)))
