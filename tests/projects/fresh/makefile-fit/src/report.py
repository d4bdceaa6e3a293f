import sys
from tabulate import tabulate

rows = [line.split() for line in open(sys.argv[1]) if line.strip()]
with open(sys.argv[2], "w") as fh:
    fh.write("# Decay fit\n\n")
    fh.write(tabulate(rows, headers=["parameter", "value"], tablefmt="github"))
    fh.write("\n")
