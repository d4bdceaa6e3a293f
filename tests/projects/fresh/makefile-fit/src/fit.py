import math
import sys

def fit(path):
    ts, ys = [], []
    for line in open(path):
        if line.strip() and not line.startswith("#"):
            t, n = line.split()
            ts.append(float(t)); ys.append(math.log(float(n)))
    n = len(ts)
    mt, my = sum(ts) / n, sum(ys) / n
    slope = sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / sum((t - mt) ** 2 for t in ts)
    return -slope, math.exp(my - slope * mt)

rate, n0 = fit(sys.argv[1])
print("rate %.6f" % rate)
print("n0 %.3f" % n0)
print("half_life %.4f" % (math.log(2) / rate))
