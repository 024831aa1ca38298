#!/usr/bin/env python3
"""Soak run: worker processes write, overwrite, read, rename and delete
files in a mediafs mount for a while, each keeping a model of what its
folder must hold. Then every folder is checked against its model, through
the mount that did the work and through a fresh one.

A failed write leaves the model as it was (mediafs keeps the old file when
an upload fails); a failed rename or delete may or may not have happened on
the server, so the names it touched are set aside as uncertain. A read that
returns bytes other than the model's is an error at once: mediafs must never
serve one object's bytes under another's name.

Usage: soak.py MOUNTPOINT SECONDS WORKERS RESULT_JSON
       soak.py --check MOUNTPOINT RESULT_JSON
"""

import json
import os
import random
import sys
import time
from multiprocessing import Process

PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"


def payload(rng):
    size = rng.choice([200, 5_000, 60_000, 300_000, 1_500_000])
    return PNG + rng.randbytes(size)


def worker(root, index, seconds, out_path):
    rng = random.Random(index * 7919 + int(time.time()))
    folder = os.path.join(root, f"w{index}")
    os.makedirs(folder, exist_ok=True)
    model = {}  # name -> bytes
    uncertain = set()
    maybe = {}  # uncertain name -> the contents it may hold, whole

    def unsure(name, data):
        uncertain.add(name)
        maybe.setdefault(name, set()).add(data.hex())

    counts = {"write": 0, "overwrite": 0, "read": 0, "rename": 0, "delete": 0, "failed": 0, "wrong_bytes": 0}
    errors = []
    deadline = time.time() + seconds
    serial = 0
    while time.time() < deadline:
        names = [n for n in model if n not in uncertain]
        op = rng.choices(["write", "overwrite", "read", "rename", "delete"], [30, 15, 35, 10, 10])[0]
        if op != "write" and not names:
            op = "write"
        try:
            if op in ("write", "overwrite"):
                if op == "write":
                    serial += 1
                    name = f"f{serial:05}.png"
                else:
                    name = rng.choice(names)
                data = payload(rng)
                try:
                    with open(os.path.join(folder, name), "wb") as f:
                        f.write(data)
                except OSError:
                    # A rewrite that failed leaves the old file; a new file
                    # whose upload could not be confirmed may have landed.
                    if op == "write":
                        unsure(name, data)
                    raise
                # close() returned: the upload succeeded.
                model[name] = data
            elif op == "read":
                name = rng.choice(names)
                with open(os.path.join(folder, name), "rb") as f:
                    got = f.read()
                if got != model[name]:
                    counts["wrong_bytes"] += 1
                    errors.append(f"read {name}: {len(got)} bytes, not the {len(model[name])} written")
            elif op == "rename":
                name = rng.choice(names)
                serial += 1
                new = f"r{serial:05}.png"
                try:
                    os.rename(os.path.join(folder, name), os.path.join(folder, new))
                except OSError:
                    unsure(name, model[name])
                    unsure(new, model[name])
                    raise
                model[new] = model.pop(name)
            elif op == "delete":
                name = rng.choice(names)
                try:
                    os.unlink(os.path.join(folder, name))
                except OSError:
                    unsure(name, model[name])
                    raise
                del model[name]
            counts[op] += 1
        except OSError:
            counts["failed"] += 1
    with open(out_path, "w") as f:
        json.dump(
            {
                "counts": counts,
                "errors": errors,
                "model": {n: d.hex() for n, d in model.items() if n not in uncertain},
                "uncertain": sorted(uncertain),
                "maybe": {n: sorted(v) for n, v in maybe.items()},
            },
            f,
        )


def check(root, result_path):
    """Compares every worker's folder with its model; returns the problems."""
    with open(result_path) as f:
        results = json.load(f)
    problems = []
    for index, result in results.items():
        folder = os.path.join(root, f"w{index}")
        present = set(os.listdir(folder))
        model = {n: bytes.fromhex(h) for n, h in result["model"].items()}
        uncertain = set(result["uncertain"])
        for name, data in model.items():
            if name not in present:
                problems.append(f"w{index}/{name}: missing")
                continue
            with open(os.path.join(folder, name), "rb") as f:
                if f.read() != data:
                    problems.append(f"w{index}/{name}: wrong bytes")
        for name in present - set(model) - uncertain:
            problems.append(f"w{index}/{name}: should not be there")
        for name in present & uncertain:
            # An operation on it failed: it may be there or not, but whole.
            with open(os.path.join(folder, name), "rb") as f:
                if f.read().hex() not in result["maybe"].get(name, []):
                    problems.append(f"w{index}/{name}: bytes that were never written whole")
    return problems


def main():
    if sys.argv[1] == "--check":
        problems = check(sys.argv[2], sys.argv[3])
        for p in problems[:50]:
            print("  " + p)
        print(f"check: {len(problems)} problems")
        sys.exit(1 if problems else 0)
    root, seconds, workers, result_path = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    parts = [f"{result_path}.{i}" for i in range(workers)]
    procs = [Process(target=worker, args=(root, i, seconds, parts[i])) for i in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    results = {}
    totals = {}
    for i, part in enumerate(parts):
        with open(part) as f:
            results[str(i)] = json.load(f)
        os.remove(part)
        for k, v in results[str(i)]["counts"].items():
            totals[k] = totals.get(k, 0) + v
    with open(result_path, "w") as f:
        json.dump(results, f)
    print("operations: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    errors = [e for r in results.values() for e in r["errors"]]
    for e in errors[:20]:
        print("  " + e)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
