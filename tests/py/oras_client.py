"""The ORAS Python client (oras-py) against a registry, for disco's tests.

usage: oras_client.py push|pull BACKEND HOST USER PASSWORD TARGET PATH

BACKEND is oras-py's auth backend: `basic` (htpasswd) or `token` (the
bearer-token flow). USER may be empty (no login). push uploads the file at
PATH as a one-layer artifact to TARGET (HOST/repo:tag); pull downloads TARGET
into the directory PATH and prints the files written. Exits 1 on failure.
"""

import os
import sys
import tempfile

import oras.client


def main() -> int:
    op, backend, host, user, password, target, path = sys.argv[1:8]
    client = oras.client.OrasClient(hostname=host, insecure=True, auth_backend=backend)
    if user:
        with tempfile.TemporaryDirectory() as cfg:
            client.login(
                username=user,
                password=password,
                hostname=host,
                config_path=os.path.join(cfg, "config.json"),
            )
    if op == "push":
        os.chdir(os.path.dirname(os.path.abspath(path)))
        resp = client.push(files=[os.path.basename(path)], target=target)
        print("pushed", resp.status_code)
        return 0 if resp.status_code in (200, 201) else 1
    if op == "pull":
        files = client.pull(target=target, outdir=path)
        for f in files:
            print(f)
        return 0 if files else 1
    print("unknown operation", op, file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # every failure is a test failure with its reason
        print(f"oras-py: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
